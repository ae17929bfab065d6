"""The conversation core: a spoken conversation in real time, whatever carries it.

A transport feeds it what the listener's side produces (PCM at a stated rate, commits,
cancels, playback reports, text) and serializes the events it hands to the transport's sink.
The core owns everything else: turn-taking by voice activity, early transcription, carry-over
of an utterance cut before its answer began, barge-in (pause at the first voiced frame, cancel
once speech is confirmed, resume after a cough), playback pacing, what the listener heard,
redaction, the history write, the dialogue slot and the telemetry.

Each response runs as one task owned by the conversation (``response.Responder``). Cancelling a
response cancels that task and waits for it, so no frame of it follows ``Interrupted``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..audio import Audio, resample
from ..errors import AudioTooShort
from . import events as ev
from .early import EarlyTranscriber
from .listening import Listening
from .response import Responder, Response
from .tool_loop import ToolOutputs
from .turns import SessionRef, Turns
from .vad import (
    FRAME_MS,
    SAMPLE_RATE,
    FrameClassifier,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    SpeechStopped,
    VoiceDismissed,
    VoiceOnset,
)

logger = logging.getLogger(__name__)

Sink = Callable[[ev.ConversationEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConversationOptions:
    """How a transport wants the conversation: the rate of the PCM it pushes, the rate of the
    answer's audio it sends on (None: the synthesizer's), and turn-taking."""

    input_rate: int = SAMPLE_RATE
    output_rate: int | None = None
    frame_ms: int = FRAME_MS
    playback_lead_ms: int = 250
    server_vad: bool = True
    auto_respond: bool = True
    speak: bool = True  # False: text-only answers, no speech synthesis
    vad_start_ms: int = 200
    vad_silence_ms: int = 600
    min_audio_s: float = 0.5
    max_audio_s: float = 60.0


class Conversation:
    def __init__(
        self,
        turns: Turns,
        session: SessionRef,
        sink: Sink,
        options: ConversationOptions | None = None,
        *,
        voice: str | None = None,
        language: str | None = None,
        instructions: str | None = None,
        classifier: FrameClassifier | None = None,
        client_tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self._turns = turns
        self.session = session
        self._sink = sink
        self.options = options = options or ConversationOptions()
        self.voice = voice
        self.language = language
        self.instructions = instructions
        # The client's own tools (chat ``tools`` format): a call ends the response with
        # ToolCallRequested; respond(tool_outputs=...) continues.
        self.client_tools = client_tools
        self._classifier = classifier
        self._input = _listening(options, classifier)
        self._send_lock = asyncio.Lock()
        self._response: Response | None = None
        self._last: Response | None = None  # the response whose turn the history holds last
        self._early = EarlyTranscriber()
        self._carried: Audio | None = None
        self._pending: Audio | None = None  # committed, waiting for respond()
        self.turns = 0

    def reconfigure(self, options: ConversationOptions) -> None:
        """New options for what comes next (a response under way keeps its own); the input
        received since the last utterance is dropped."""
        self.clear_input()
        self.options = options
        self._input = _listening(options, self._classifier)

    # -- input -------------------------------------------------------------------------------

    async def push_audio(self, pcm: bytes) -> None:
        """PCM s16le mono at ``options.input_rate``, any length of whole samples."""
        for event in self._input.push(pcm):
            await self._on_segment(event)

    async def _on_segment(
        self,
        event: VoiceOnset
        | VoiceDismissed
        | SpeechStarted
        | SpeechPaused
        | SpeechResumed
        | SpeechStopped,
    ) -> None:
        response = self._response
        if response is not None and response.complete:
            response = None
        if isinstance(event, VoiceOnset):
            if response is not None and response.heard.any_sent and response.paused_at is None:
                await self._pause(response)
        elif isinstance(event, VoiceDismissed):
            if response is not None and response.paused_at is not None:
                await self._resume(response)
        elif isinstance(event, SpeechStarted):
            # Barge-in first: stopping the assistant is what the listener waits for.
            await self._interrupt(carry=True)
            await self._emit(ev.SpeechStarted(self._input.heard_ms))
        elif isinstance(event, SpeechPaused):
            self._start_early(event.audio)
        elif isinstance(event, SpeechResumed):
            self._early.drop()
        else:
            await self._emit(ev.SpeechStopped(self._input.heard_ms))
            await self._utterance(event.audio, keep_early=True)

    async def commit(self, *, respond: bool | None = None) -> bool:
        """The listener's utterance ends now (push-to-talk, or no server VAD). A response
        follows when ``respond`` (default: ``options.auto_respond``); otherwise the utterance
        waits for respond(). False when there was too little audio to commit."""
        was_speaking = self._input.speaking
        audio = self._input.commit()
        if was_speaking:
            await self._emit(ev.SpeechStopped(self._input.heard_ms))
        if audio is None or audio.duration_s < self.options.min_audio_s:
            self._early.drop()
            await self._emit(
                ev.ErrorRaised(
                    AudioTooShort(
                        f"Nothing to answer: commit at least {self.options.min_audio_s} s of audio."
                    )
                )
            )
            return False
        await self._utterance(audio, keep_early=False, respond=respond)
        return True

    async def hold(self, pcm: bytes) -> None:
        """An utterance given whole (PCM at ``options.input_rate``, e.g. an audio message):
        it waits for respond() as a committed one does."""
        audio = Audio(pcm, self.options.input_rate)
        if audio.sample_rate != SAMPLE_RATE:
            audio = await asyncio.to_thread(resample, audio, SAMPLE_RATE)
        self._early.drop()
        self._pending = audio

    def clear_input(self) -> None:
        """Drops the audio received since the last utterance."""
        self._input.clear()
        self._pending = None
        self._early.drop()

    async def respond(
        self,
        *,
        text: str | None = None,
        instructions: str | None = None,
        speak: bool | None = None,
        tool_outputs: ToolOutputs | None = None,
    ) -> str:
        """Starts a response to ``text``, or to the committed audio waiting for one, or with
        ``tool_outputs`` ((call id, output) pairs) to the client's tool calls of the last turn
        (committed audio keeps waiting); spoken unless ``speak`` is False (default:
        ``options.speak``). Returns the turn id."""
        audio = None
        if tool_outputs is None:
            audio, self._pending = self._pending, None
        return await self._begin(
            audio,
            text=text,
            instructions=instructions,
            keep_early=False,
            speak=speak,
            tool_outputs=tool_outputs,
        )

    async def cancel(self) -> None:
        """The listener (or its client) stops the answer."""
        await self._interrupt(carry=False)

    def played(self, turn_id: str, played_ms: float) -> None:
        """The listener has played the first ``played_ms`` of turn ``turn_id``'s audio."""
        response = self._response
        if response is not None and response.turn_id == turn_id:
            response.heard.played(played_ms)

    async def truncate(self, turn_id: str, audio_end_ms: float) -> str | None:
        """The listener stopped turn ``turn_id``'s audio after its first ``audio_end_ms``:
        the history keeps the words of that much audio, also when the response is over (its
        stored turn is amended). Returns the kept text; None for an unknown turn."""
        response = self._response
        if response is not None and response.turn_id == turn_id:
            if not response.complete:  # its ending has not yet read what to keep
                response.heard.played(audio_end_ms)
                response.truncated_ms = response.heard.played_ms
                return response.heard.text_until(response.truncated_ms or 0.0)
            if response.task is not None:  # wait until its turn is stored
                await asyncio.wait({response.task})
        last = self._last
        if last is None or last.turn_id != turn_id or last.transcript is None:
            return None
        kept = last.heard.text_until(min(audio_end_ms, last.heard.sent_ms))
        await self._turns.remember(
            self.session,
            last.transcript,
            kept,
            interrupted=True,
            tools=last.tools,
            resumes=last.resumes,
            amend=True,
        )
        return kept

    async def say(self, text: str) -> None:
        """Speaks ``text`` as the assistant (a greeting), without the language model."""
        await self._interrupt(carry=False)
        response = Response(uuid.uuid4().hex[:12], None, time.perf_counter(), remember=False)
        response.task = asyncio.create_task(self._context().run(response, announce=text))
        self._response = response

    async def close(self) -> None:
        """Stops every piece of work of this conversation and waits for it."""
        await self._cancel_response(notify=False)
        await self._early.close()

    async def wait_idle(self) -> None:
        """Waits until no response is under way (for a transport that drains)."""
        response = self._response
        if response is not None and response.task is not None:
            await asyncio.wait({response.task})

    # -- turns -------------------------------------------------------------------------------

    def _start_early(self, audio: Audio) -> None:
        """Transcribes the utterance so far while waiting to know whether it is over."""
        stt = self._turns.providers.stt
        utterance = self._with_carried(audio)
        self._early.start(stt.transcribe(utterance, language=self.language))

    def _with_carried(self, audio: Audio) -> Audio:
        """The utterance with the words of a turn the listener cut short before its answer
        began: they went on speaking, so both parts are one question."""
        if self._carried is None:
            return audio
        joined = Audio.concatenate([self._carried, audio], audio.sample_rate)
        keep = int(self.options.max_audio_s * audio.sample_rate) * 2
        return Audio(joined.pcm[-keep:], audio.sample_rate)

    async def _utterance(
        self, audio: Audio, *, keep_early: bool, respond: bool | None = None
    ) -> None:
        if self.options.auto_respond if respond is None else respond:
            await self._begin(audio, text=None, instructions=None, keep_early=keep_early)
            return
        self._early.drop()
        self._pending = self._with_carried(audio)
        self._carried = None

    async def _begin(
        self,
        audio: Audio | None,
        *,
        text: str | None,
        instructions: str | None,
        keep_early: bool,
        speak: bool | None = None,
        tool_outputs: ToolOutputs | None = None,
    ) -> str:
        ended_at = time.perf_counter()
        await self._interrupt(carry=False)
        # Looked up once the last response is stored; InvalidRequest for calls it did not make.
        turns = self._turns
        resumes = None if tool_outputs is None else await turns.resumed(self.session, tool_outputs)
        if audio is not None:
            audio = self._with_carried(audio)
            self._carried = None
        early = self._early.take() if keep_early else None
        self._early.drop()  # nothing to keep, or a transcription that is not this turn's
        self.turns += 1
        response = Response(uuid.uuid4().hex[:12], audio, ended_at)
        response.speak = self.options.speak if speak is None else speak
        if tool_outputs is not None:  # no user words: the resumed turn's are kept
            response.resumes, response.tool_outputs, response.transcript = resumes, tool_outputs, ""
        response.task = asyncio.create_task(
            self._context().run(response, early=early, text=text, instructions=instructions)
        )
        response.task.add_done_callback(lambda _: self._stored(response))
        self._response = response
        return response.turn_id

    async def _interrupt(self, *, carry: bool) -> None:
        """Stops the current response, if one is under way. With ``carry``, a response cut
        before any of its audio was sent passes its audio on to the next utterance instead of
        entering the history."""
        await self._cancel_response(notify=True, carry=carry)

    async def _cancel_response(self, *, notify: bool, carry: bool = False) -> None:
        response, self._response = self._response, None
        if response is None or response.task is None or response.task.done():
            return
        if response.complete:  # only its ending is left to do
            await asyncio.wait({response.task})
            return
        response.task.cancel()
        await asyncio.wait({response.task})
        if not notify:
            return
        kept = response.heard.kept()
        await self._emit(ev.Interrupted(response.turn_id))
        await self._emit(
            ev.ResponseDone(
                response.turn_id,
                response.transcript or "",
                self._turns.redact(kept),
                interrupted=True,
                timings=response.timings.as_dict(),
            )
        )
        if carry and not response.heard.any_sent and response.audio is not None:
            self._carried = response.audio
        elif response.transcript is not None and response.remember:
            await self._turns.remember(
                self.session,
                response.transcript,
                kept,
                interrupted=True,
                resumes=response.resumes,
            )
            response.stored = True
            self._last = response

    async def _pause(self, response: Response) -> None:
        response.paused_at = time.perf_counter()
        response.resumed.clear()
        await self._emit(ev.AudioPaused(response.turn_id))

    async def _resume(self, response: Response) -> None:
        response.paused_at = None
        response.resumed.set()
        await self._emit(ev.AudioResumed(response.turn_id))

    def _context(self) -> Responder:
        options = self.options
        return Responder(
            turns=self._turns,
            session=self.session,
            emit=self._emit,
            output_rate=options.output_rate,
            frame_ms=options.frame_ms,
            playback_lead_ms=options.playback_lead_ms,
            voice=self.voice,
            language=self.language,
            instructions=self.instructions,
            client_tools=self.client_tools,
        )

    def _stored(self, response: Response) -> None:
        if response.stored:
            self._last = response

    # -- output ------------------------------------------------------------------------------

    async def _emit(self, event: ev.ConversationEvent) -> None:
        async with self._send_lock:
            await self._sink(event)


def _listening(options: ConversationOptions, classifier: FrameClassifier | None) -> Listening:
    return Listening(
        input_rate=options.input_rate,
        server_vad=options.server_vad,
        vad_start_ms=options.vad_start_ms,
        vad_silence_ms=options.vad_silence_ms,
        max_audio_s=options.max_audio_s,
        classifier=classifier,
    )
