"""One dialogue turn: transcribe, stream the reply, cut it into sentences, synthesize each.

Its value types (timings, events) live in ``turn_types`` and are re-exported here.

The language model and the speech synthesizer run concurrently: sentence k is synthesized while
the model writes sentence k+1, and audio leaves in reply order. A turn is consumed as an async
iterator of events; closing the iterator (client gone, barge-in) cancels all of its work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..audio import Audio, resample
from ..errors import OrchestratorError, ProviderFailed, ProviderTimeout, SpeechNotRecognized
from ..providers.base import ChatMessage, Providers, ToolCall, ToolChatModel, Transcript
from .aio import aclose, ms_since
from .sentences import SentenceChunker
from .tool_loop import (
    ClientToolCall,
    ToolClock,
    ToolExchange,
    ToolOutputs,
    ToolPolicy,
    ToolRunner,
    offered_tools,
    round_messages,
    run_round,
    split_calls,
)
from .turn_types import (
    AudioChunk,
    EarlyTranscription,
    StageTimeouts,
    TextDelta,
    TranscriptReady,
    TurnDone,
    TurnEvent,
    TurnTimings,
)


@dataclass
class DialogueTurn:
    """A single turn. ``context`` is what precedes the user's words: the system prompt and the
    session's history. ``started_at`` is ``time.perf_counter()`` when the request arrived (or the
    utterance ended). With ``early``, its result is used instead of transcribing ``audio``;
    with ``text``, the user's words are given and nothing is transcribed. A transcript longer
    than ``max_transcript_chars`` is cut before it reaches the model."""

    providers: Providers
    audio: Audio
    context: Sequence[ChatMessage]
    started_at: float
    voice: str | None = None
    language: str | None = None
    timeouts: StageTimeouts = field(default_factory=StageTimeouts)
    timings: TurnTimings = field(default_factory=TurnTimings)
    early: EarlyTranscription | None = None
    # Speech beyond this ends the answer at the end of the sentence that passed it.
    max_output_s: float | None = None
    text: str | None = None
    max_transcript_chars: int | None = None
    # Speak the first clause of a long first sentence without waiting for its end.
    first_clause_min_words: int | None = None
    speak: bool = True  # False: a text-only reply, nothing is synthesized
    # Tools the model may call (an LLM that can call them: checked at start-up).
    tools: ToolRunner | None = None
    tool_policy: ToolPolicy = field(default_factory=ToolPolicy)
    tools_used: list[ToolExchange] = field(default_factory=list)
    # The client's own tools (chat ``tools`` format), offered beside ``tools``: a call of one
    # ends the turn after the text said so far (ClientToolCall); nothing runs here.
    client_tools: Sequence[Mapping[str, Any]] | None = None
    # The outputs of the client's calls, in place of the user's words (nothing is transcribed):
    # ``context`` ends with the assistant message that made the calls.
    tool_outputs: ToolOutputs | None = None
    _handed_out: bool = field(default=False, init=False)  # a client call ended the turn
    _round_start: int = field(default=0, init=False)
    _output_s: float = field(default=0.0, init=False)
    _cut: bool = field(default=False, init=False)

    async def events(self) -> AsyncIterator[TurnEvent]:
        """Yields TranscriptReady, then TextDelta and AudioChunk as they come, then TurnDone.
        Raises OrchestratorError subclasses (and anything a provider leaks)."""
        queue: asyncio.Queue[TurnEvent | Exception | None] = asyncio.Queue()
        task = asyncio.create_task(self._run(queue))
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            task.cancel()
            await asyncio.wait({task})

    async def _run(self, out: asyncio.Queue[TurnEvent | Exception | None]) -> None:
        try:
            if self.tool_outputs is None:
                transcript = await self._transcribe()
                out.put_nowait(TranscriptReady(transcript.text, transcript.language))
                messages = [*self.context, ChatMessage("user", transcript.text)]
            else:
                transcript = Transcript("")
                messages = [
                    *self.context,
                    *(ChatMessage("tool", text, tool_call_id=i) for i, text in self.tool_outputs),
                ]
            sentences: asyncio.Queue[str | None] = asyncio.Queue()
            reply: list[str] = []
            rate: list[int] = []
            spoken: list[str] = []
            async with asyncio.TaskGroup() as group:
                generation = group.create_task(self._generate(messages, sentences, out, reply))
                if self.speak:
                    group.create_task(self._speak(sentences, out, rate, spoken, generation))
            self.timings.total_ms = ms_since(self.started_at)
            # Cut short (ORCH_MAX_OUTPUT_S): the answer is what was spoken.
            text = " ".join(spoken) if self._cut else "".join(reply).strip()
            exchanges = tuple(self.tools_used)
            sample_rate = rate[0] if rate else 0  # 0: a text-only reply
            out.put_nowait(TurnDone(transcript.text, text, sample_rate, self.timings, exchanges))
            out.put_nowait(None)
        except Exception as e:  # handed to the consumer, which raises it
            out.put_nowait(_first_error(e))

    async def _transcribe(self) -> Transcript:
        transcript = await self._recognize()
        if self.max_transcript_chars is not None:
            text = transcript.text[: self.max_transcript_chars]
            transcript = Transcript(text, transcript.language)
        return transcript

    async def _recognize(self) -> Transcript:
        if self.text is not None:
            self.timings.stt_ms = 0.0
            if not self.text.strip():
                raise SpeechNotRecognized("The user's message is empty.")
            return Transcript(self.text)
        start = time.perf_counter() if self.early is None else self.early.started_at
        try:
            async with asyncio.timeout(self.timeouts.stt_s - ms_since(start) / 1000):
                if self.early is not None:
                    transcript = await self.early.task
                else:
                    transcript = await self.providers.stt.transcribe(
                        self.audio, language=self.language
                    )
        except TimeoutError as e:
            raise ProviderTimeout("stt", "The stt service did not answer in time.") from e
        finally:
            finished = self.early.finished_at if self.early is not None else None
            end = finished if finished is not None else time.perf_counter()
            self.timings.stt_ms = (end - start) * 1000
        if not transcript.text.strip():
            raise SpeechNotRecognized("No speech was recognized in the audio.")
        return transcript

    async def _generate(
        self,
        messages: Sequence[ChatMessage],
        sentences: asyncio.Queue[str | None],
        out: asyncio.Queue[TurnEvent | Exception | None],
        reply: list[str],
    ) -> None:
        start = time.perf_counter()
        chunker = SentenceChunker(first_clause_min_words=self.first_clause_min_words)
        messages = list(messages)
        clock = ToolClock()
        rounds = 0
        try:
            while True:
                calls = await self._generate_round(messages, rounds, chunker, sentences, out, reply)
                ours, theirs = split_calls(calls, self.tools, self.client_tools)
                if not ours and not theirs:
                    break
                rounds += 1
                # What the model said before its calls is spoken now, not after them.
                for sentence in chunker.flush():
                    sentences.put_nowait(sentence)
                said = "".join(reply[self._round_start :])
                exchanges: list[ToolExchange] = []
                if ours:
                    assert self.tools is not None
                    with clock:
                        exchanges = await run_round(
                            self.tools, self.tool_policy, ours, out.put_nowait, sentences.put_nowait
                        )
                self.tools_used.extend(exchanges)
                if theirs:  # their results come with a follow-up turn
                    self._handed_out = True
                    for call in theirs:
                        out.put_nowait(ClientToolCall(call))
                        self.tools_used.append(ToolExchange(call.id, call.name, call.arguments, ""))
                    break
                messages.extend(round_messages(said, exchanges))
                self._round_start = len(reply)
        finally:
            self.timings.llm_ms = ms_since(start) - clock.ms
            if self.tools_used or clock.ms:
                self.timings.tools_ms = clock.ms
        for sentence in chunker.flush():
            sentences.put_nowait(sentence)
        sentences.put_nowait(None)
        if not "".join(reply).strip() and not self._handed_out:
            raise ProviderFailed("llm", "The llm service returned an empty reply.")

    async def _generate_round(
        self,
        messages: Sequence[ChatMessage],
        rounds: int,
        chunker: SentenceChunker,
        sentences: asyncio.Queue[str | None],
        out: asyncio.Queue[TurnEvent | Exception | None],
        reply: list[str],
    ) -> list[ToolCall]:
        """One reply of the model: its text goes out as it comes; returns the tool calls it
        asked for (none once the rounds are used up: the last round offers no tools)."""
        start = time.perf_counter()
        llm = self.providers.llm
        calls: list[ToolCall] = []
        stream: AsyncIterator[str | ToolCall]
        last = rounds >= self.tool_policy.max_rounds
        offered = offered_tools(None if last else self.tools, self.client_tools)
        if offered:
            # Checked at start-up for our tools, by Turns for the client's.
            with_tools: ToolChatModel = llm  # type: ignore[assignment]
            stream = with_tools.stream_with_tools(messages, offered)
        else:
            stream = llm.stream(messages)
        try:
            async with asyncio.timeout(self.timeouts.llm_s):
                async for item in stream:
                    if isinstance(item, ToolCall):
                        calls.append(item)
                        continue
                    if self.timings.llm_first_token_ms is None:
                        self.timings.llm_first_token_ms = ms_since(start)
                    reply.append(item)
                    out.put_nowait(TextDelta(item))
                    for sentence in chunker.push(item):
                        sentences.put_nowait(sentence)
        except TimeoutError as e:
            raise ProviderTimeout("llm", "The llm service did not finish in time.") from e
        finally:
            await aclose(stream)
        return calls

    async def _speak(
        self,
        sentences: asyncio.Queue[str | None],
        out: asyncio.Queue[TurnEvent | Exception | None],
        rate: list[int],
        spoken: list[str],
        generation: asyncio.Task[None],
    ) -> None:
        start: float | None = None
        index = 0
        try:
            while (sentence := await sentences.get()) is not None:
                if start is None:
                    start = time.perf_counter()
                await self._speak_one(sentence, index, out, rate, start)
                spoken.append(sentence.strip())
                index += 1
                if self.max_output_s is not None and self._output_s >= self.max_output_s:
                    self._cut = True
                    generation.cancel()
                    break
        finally:
            if start is not None:
                self.timings.tts_ms = ms_since(start)
        if not rate and index:  # no sentence at all: the turn ended on a client's call
            raise ProviderFailed("tts", "The tts service returned no audio.")

    async def _speak_one(
        self,
        sentence: str,
        index: int,
        out: asyncio.Queue[TurnEvent | Exception | None],
        rate: list[int],
        start: float,
    ) -> None:
        stream = self.providers.tts.synthesize(sentence, voice=self.voice)
        try:
            while True:
                # The timeout bounds the first audio and each gap, not a long sentence's body.
                async with asyncio.timeout(self.timeouts.tts_s):
                    chunk = await anext(stream, None)
                if chunk is None:
                    break
                if chunk.frames == 0:
                    continue
                if not rate:
                    rate.append(chunk.sample_rate)
                    self.timings.tts_first_audio_ms = ms_since(start)
                    self.timings.first_audio_ms = ms_since(self.started_at)
                elif chunk.sample_rate != rate[0]:
                    chunk = await asyncio.to_thread(resample, chunk, rate[0])
                self._output_s += chunk.duration_s
                out.put_nowait(AudioChunk(chunk, sentence, index))
        except TimeoutError as e:
            raise ProviderTimeout("tts", "The tts service did not answer in time.") from e
        finally:
            await aclose(stream)


def _first_error(error: Exception) -> Exception:
    """The error to report from a task group's failure: a domain error when there is one."""
    if isinstance(error, ExceptionGroup):
        leaves = _leaves(error)
        for leaf in leaves:
            if isinstance(leaf, OrchestratorError):
                return leaf
        return leaves[0]
    return error


def _leaves(group: BaseExceptionGroup[Any]) -> list[Exception]:
    found: list[Exception] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        elif isinstance(exc, Exception):
            found.append(exc)
    return found


__all__ = [
    "AudioChunk",
    "DialogueTurn",
    "EarlyTranscription",
    "StageTimeouts",
    "TextDelta",
    "TranscriptReady",
    "TurnDone",
    "TurnEvent",
    "TurnTimings",
]
