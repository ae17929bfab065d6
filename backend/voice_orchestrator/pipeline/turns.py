"""One code path for every turn, whatever way it came in: the session's history as context, a
dialogue slot, the turn itself with its telemetry, redaction of what leaves, and the history
write. REST requests and conversations (WebSocket, phone calls, the Realtime socket) all run
their turns through ``Turns``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..audio import Audio, resample
from ..errors import ProviderFailed, ProviderTimeout
from ..providers.base import Providers
from ..settings import Settings
from .admission import Admission
from .aio import aclose, ms_since
from .dialogue import (
    AudioChunk,
    DialogueTurn,
    EarlyTranscription,
    StageTimeouts,
    TextDelta,
    TranscriptReady,
    TurnDone,
    TurnEvent,
    TurnTimings,
)
from .follow_up import continued, resumed_context, resumed_turn
from .redaction import redact
from .sentences import SentenceChunker
from .sessions import SessionStore, Turn, build_context, store_key
from .telemetry import TurnTelemetry
from .tool_loop import ClientToolCall, ToolExchange, ToolOutputs, ToolPolicy, ToolRunner

# Where a reply may be cut for redaction: after a sentence's end, which no run of digits
# (written or spoken, with spaces or dashes between) can span.
_SENTENCE_BREAK = re.compile(r"[.!?…\n]")


@dataclass(frozen=True, slots=True)
class TurnPolicy:
    """The rules every turn follows, from the settings."""

    system_prompt: str
    timeouts: StageTimeouts
    max_output_s: float | None = None
    redact: bool = True
    max_transcript_chars: int | None = None
    max_history_chars: int | None = None
    first_clause_min_words: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TurnPolicy:
        return cls(
            system_prompt=settings.llm.system_prompt,
            timeouts=StageTimeouts(
                stt_s=settings.stt.timeout_s,
                llm_s=settings.llm.timeout_s,
                tts_s=settings.tts.timeout_s,
            ),
            max_output_s=settings.max_output_s,
            redact=settings.redact,
            max_transcript_chars=settings.max_transcript_chars,
            max_history_chars=settings.max_history_chars,
            first_clause_min_words=settings.tts.first_clause_min_words or None,
        )


@dataclass(frozen=True, slots=True)
class SessionRef:
    """A session as its owner names it (owner: a hash of the API key, empty without keys)."""

    owner: str
    id: str

    @property
    def key(self) -> str:
        return store_key(self.owner, self.id)


class Turns:
    def __init__(
        self,
        providers: Providers,
        slots: Admission,
        sessions: SessionStore,
        telemetry: TurnTelemetry,
        policy: TurnPolicy,
        tools: ToolRunner | None = None,
        tool_policy: ToolPolicy | None = None,
    ) -> None:
        self.providers = providers
        self.tools = tools
        self.tool_policy = tool_policy or ToolPolicy()
        self.slots = slots
        self.sessions = sessions
        self.policy = policy
        self._telemetry = telemetry

    def redact(self, text: str) -> str:
        return redact(text) if self.policy.redact else text

    async def history(self, session: SessionRef | None) -> list[Turn]:
        return await self.sessions.history(session.key) if session is not None else []

    @property
    def client_tools_supported(self) -> bool:
        """Whether the language model can be offered the client's own tools."""
        return callable(getattr(self.providers.llm, "stream_with_tools", None))

    async def resumed(self, session: SessionRef | None, tool_outputs: ToolOutputs) -> Turn:
        """The stored turn a follow-up with ``tool_outputs`` continues, their results filled
        in (redacted, as the history keeps them). InvalidRequest when the session's last turn
        made none of those calls."""
        outputs = [(call_id, self.redact(output)) for call_id, output in tool_outputs]
        return resumed_turn(await self.history(session), outputs)

    async def run(
        self,
        session: SessionRef | None,
        audio: Audio,
        *,
        started_at: float,
        voice: str | None = None,
        language: str | None = None,
        early: EarlyTranscription | None = None,
        timings: TurnTimings | None = None,
        text: str | None = None,
        instructions: str | None = None,
        speak: bool = True,
        client_tools: Sequence[Mapping[str, Any]] | None = None,
        tool_outputs: ToolOutputs | None = None,
    ) -> AsyncGenerator[TurnEvent, None]:
        """The turn's events under a dialogue slot, with every text redacted as a client may
        see it (text deltas a sentence at a time when redaction is on). Raises
        OrchestratorError subclasses; closing the generator cancels the turn and frees the
        slot. Nothing is remembered here: the caller knows what the listener heard.

        ``client_tools`` (chat ``tools`` format) are the client's own: a call of one ends the
        turn with ClientToolCall (ignored when the model cannot call tools). With
        ``tool_outputs`` ((call id, output) pairs) the turn answers those calls, made by the
        session's last turn, instead of user words (InvalidRequest when it made none)."""
        policy = self.policy
        async with self.slots.acquire():
            history = await self.history(session)
            system_prompt = policy.system_prompt if instructions is None else instructions
            limit = policy.max_history_chars
            if tool_outputs is None:
                context = build_context(system_prompt, history, max_chars=limit)
            else:
                context = resumed_context(system_prompt, history, tool_outputs, max_chars=limit)
            turn = DialogueTurn(
                providers=self.providers,
                audio=audio,
                context=context,
                started_at=started_at,
                voice=voice,
                language=language,
                timeouts=policy.timeouts,
                timings=timings if timings is not None else TurnTimings(),
                early=early,
                max_output_s=policy.max_output_s,
                text=text,
                max_transcript_chars=policy.max_transcript_chars,
                first_clause_min_words=policy.first_clause_min_words,
                tools=self.tools,
                tool_policy=self.tool_policy,
                speak=speak,
                client_tools=client_tools if self.client_tools_supported else None,
                tool_outputs=tool_outputs,
            )
            events = self._telemetry.observe(turn)
            held = ""  # reply text not yet released (redaction waits for a sentence's end)
            try:
                async for event in events:
                    if not policy.redact:
                        yield event
                    elif isinstance(event, TextDelta):
                        held += event.text
                        cut = _last_break(held)
                        if cut:
                            yield TextDelta(redact(held[:cut]))
                            held = held[cut:]
                    elif isinstance(event, TurnDone):
                        if held:
                            yield TextDelta(redact(held))
                            held = ""
                        yield replace(
                            event,
                            transcript=redact(event.transcript),
                            response_text=redact(event.response_text),
                            tools=tuple(
                                replace(t, arguments=redact(t.arguments), result=redact(t.result))
                                for t in event.tools
                            ),
                        )
                    elif isinstance(event, TranscriptReady):
                        yield replace(event, text=redact(event.text))
                    elif isinstance(event, AudioChunk):
                        yield replace(event, sentence=redact(event.sentence))
                    elif isinstance(event, ClientToolCall):
                        arguments = redact(event.call.arguments)
                        yield ClientToolCall(replace(event.call, arguments=arguments))
                    else:
                        yield event
            finally:
                await aclose(events)

    async def announce(
        self, text: str, *, voice: str | None, started_at: float
    ) -> AsyncGenerator[TurnEvent, None]:
        """Speaks ``text`` (a greeting) under a dialogue slot: its audio, sentence by sentence,
        then TurnDone. Nothing is transcribed or generated."""
        timings = TurnTimings()
        rate: int | None = None
        async with self.slots.acquire():
            chunker = SentenceChunker()
            for index, sentence in enumerate(chunker.push(text) + chunker.flush()):
                stream = self.providers.tts.synthesize(sentence, voice=voice)
                try:
                    async with asyncio.timeout(self.policy.timeouts.tts_s):
                        async for chunk in stream:
                            if chunk.frames == 0:
                                continue
                            if rate is None:
                                rate = chunk.sample_rate
                                timings.first_audio_ms = ms_since(started_at)
                            elif chunk.sample_rate != rate:
                                chunk = await asyncio.to_thread(resample, chunk, rate)
                            yield AudioChunk(chunk, sentence, index)
                except TimeoutError as e:
                    raise ProviderTimeout("tts", "The tts service did not answer in time.") from e
                finally:
                    await aclose(stream)
        if rate is None:
            raise ProviderFailed("tts", "The tts service returned no audio.")
        timings.total_ms = ms_since(started_at)
        yield TurnDone("", text, rate, timings)

    async def remember(
        self,
        session: SessionRef | None,
        transcript: str,
        reply: str,
        *,
        interrupted: bool = False,
        tools: tuple[ToolExchange, ...] = (),
        resumes: Turn | None = None,
        amend: bool = False,
    ) -> None:
        """Stores a finished turn as the listener had it (redacted when redaction is on). A
        follow-up of the client's tool calls continues the turn it ``resumes`` (from
        ``resumed``); with ``amend``, or for a follow-up, the last stored turn is replaced."""
        if session is None:
            return
        now = time.time()
        if resumes is not None:
            turn = continued(resumes, self.redact(reply), tools, interrupted=interrupted, at=now)
        else:
            turn = Turn(self.redact(transcript), self.redact(reply), interrupted, now, tools)
        if amend or resumes is not None:
            await self.sessions.amend_last(session.key, turn)
        else:
            await self.sessions.append(session.key, turn)


def _last_break(text: str) -> int:
    end = 0
    for match in _SENTENCE_BREAK.finditer(text):
        end = match.end()
    return end
