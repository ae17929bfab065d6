"""One response of a conversation, in two halves: the producer runs the turn under a dialogue
slot (freed when synthesis ends, not when playback does) and the player sends the audio at
real-time pace, at most the playback lead ahead of the listener, pausing while the listener
may be speaking. Its ending decides what the history keeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr

from ..audio import Audio
from ..errors import OrchestratorError
from ..providers.base import ToolCall
from . import dialogue
from . import events as ev
from .heard import HeardText
from .pacing import Pacer
from .sessions import Turn
from .tool_loop import ClientToolCall, ToolCallStarted, ToolExchange, ToolOutputs
from .turns import SessionRef, Turns
from .vad import SAMPLE_RATE

logger = logging.getLogger(__name__)


@dataclass
class Response:
    turn_id: str
    audio: Audio | None
    started_at: float
    transcript: str | None = None
    timings: dialogue.TurnTimings = field(default_factory=dialogue.TurnTimings)
    heard: HeardText = field(default_factory=HeardText)
    resumed: asyncio.Event = field(default_factory=asyncio.Event)
    paused_at: float | None = None
    remember: bool = True
    speak: bool = True
    truncated_ms: float | None = None  # the listener stopped playback there (truncate)
    tools: tuple[ToolExchange, ...] = ()  # the calls its stored turn was built on
    tool_outputs: ToolOutputs | None = None  # it answers the client's calls of the turn it
    resumes: Turn | None = None  # continues
    requested: list[ToolCall] = field(default_factory=list)  # calls of the client's tools
    complete: bool = False  # all of it was sent: a barge-in no longer cuts it
    stored: bool = False  # its turn is in the history
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class Responder:
    """What a response needs of its conversation."""

    turns: Turns
    session: SessionRef
    emit: Callable[[ev.ConversationEvent], Awaitable[None]]
    output_rate: int | None
    frame_ms: int
    playback_lead_ms: int
    voice: str | None
    language: str | None
    instructions: str | None
    client_tools: Sequence[Mapping[str, Any]] | None = None

    async def run(
        self,
        response: Response,
        *,
        early: dialogue.EarlyTranscription | None = None,
        text: str | None = None,
        instructions: str | None = None,
        announce: str | None = None,
    ) -> None:
        response.resumed.set()
        playback: asyncio.Queue[dialogue.AudioChunk | dialogue.TurnDone] = asyncio.Queue()
        failure: OrchestratorError | None = None
        try:
            await self.emit(ev.ResponseStarted(response.turn_id))
            async with asyncio.TaskGroup() as group:
                group.create_task(
                    self._produce(response, playback, early, text, instructions, announce)
                )
                group.create_task(self._play(response, playback))
        except* OrchestratorError as group:
            first = group.exceptions[0]
            assert isinstance(first, OrchestratorError)
            failure = first
        except* Exception as group:
            # A gone listener is no failure: the transport sees the disconnect and closes.
            if not all(_is_gone(e) for e in group.exceptions):
                logger.error("conversation turn failed", exc_info=group)
                failure = OrchestratorError("The turn failed.")
        if failure is not None:
            try:
                await self.emit(ev.ErrorRaised(failure, response.turn_id))
            except Exception as e:
                if not _is_gone(e):
                    raise

    async def _produce(
        self,
        response: Response,
        playback: asyncio.Queue[dialogue.AudioChunk | dialogue.TurnDone],
        early: dialogue.EarlyTranscription | None,
        text: str | None,
        instructions: str | None,
        announce: str | None,
    ) -> None:
        turns = self.turns
        if announce is not None:
            events = turns.announce(announce, voice=self.voice, started_at=response.started_at)
        else:
            events = turns.run(
                self.session,
                response.audio or Audio(b"", SAMPLE_RATE),
                started_at=response.started_at,
                voice=self.voice,
                language=self.language,
                early=early,
                timings=response.timings,
                text=text,
                instructions=instructions if instructions is not None else self.instructions,
                speak=response.speak,
                client_tools=self.client_tools,
                tool_outputs=response.tool_outputs,
            )
        rate = self.output_rate
        # A streaming resampler per sentence: its chunks join without clicks at their edges,
        # and the filter's tail is flushed into the sentence it belongs to when the next one
        # begins, so each sentence's audio duration (what the listener heard) stays exact.
        resampler: Any = None
        last: dialogue.AudioChunk | None = None
        try:
            async for event in events:
                if isinstance(event, dialogue.TranscriptReady):
                    response.transcript = event.text
                    await self.emit(ev.TranscriptFinal(response.turn_id, event.text))
                elif isinstance(event, dialogue.TextDelta):
                    await self.emit(ev.TextDelta(response.turn_id, event.text))
                elif isinstance(event, dialogue.AudioChunk):
                    if rate is not None and event.audio.sample_rate != rate:
                        new_sentence = (
                            last is not None and last.sentence_index != event.sentence_index
                        )
                        if new_sentence and resampler is not None and last is not None:
                            self._flush(response, playback, resampler, last, rate)
                            resampler = None
                        if resampler is None:
                            resampler = soxr.ResampleStream(
                                event.audio.sample_rate, rate, 1, dtype="int16"
                            )
                        samples = np.frombuffer(event.audio.pcm, dtype=np.int16)
                        audio = Audio(resampler.resample_chunk(samples).tobytes(), rate)
                        event = dialogue.AudioChunk(audio, event.sentence, event.sentence_index)
                    last = event
                    self._queue(response, playback, event)
                elif isinstance(event, dialogue.TurnDone):
                    if resampler is not None and last is not None and rate is not None:
                        self._flush(response, playback, resampler, last, rate)
                    playback.put_nowait(event)
                elif isinstance(event, ClientToolCall):
                    response.requested.append(event.call)
                elif isinstance(event, ToolCallStarted):
                    await self.emit(ev.ToolCalled(response.turn_id, event.call_id, event.name))
                else:
                    await self.emit(
                        ev.ToolFinished(
                            response.turn_id, event.call_id, event.name, event.ok, event.ms
                        )
                    )
        finally:
            await events.aclose()

    async def _send_frame(self, pacer: Pacer, frame: bytes, rate: int) -> None:
        await pacer.wait()
        await self.emit(ev.AudioFrame(pacer.response.turn_id, frame, rate))
        pacer.sent(len(frame) / 2 / rate)

    @classmethod
    def _flush(
        cls,
        response: Response,
        playback: asyncio.Queue[dialogue.AudioChunk | dialogue.TurnDone],
        resampler: Any,
        last: dialogue.AudioChunk,
        rate: int,
    ) -> None:
        tail = resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        audio = Audio(tail.tobytes(), rate)
        cls._queue(
            response, playback, dialogue.AudioChunk(audio, last.sentence, last.sentence_index)
        )

    @staticmethod
    def _queue(
        response: Response,
        playback: asyncio.Queue[dialogue.AudioChunk | dialogue.TurnDone],
        chunk: dialogue.AudioChunk,
    ) -> None:
        if not chunk.audio.pcm:
            return
        ms = chunk.audio.duration_s * 1000
        response.heard.synthesized(chunk.sentence_index, chunk.sentence, ms)
        playback.put_nowait(chunk)

    async def _play(
        self,
        response: Response,
        playback: asyncio.Queue[dialogue.AudioChunk | dialogue.TurnDone],
    ) -> None:
        """Sends the answer's audio at real-time pace, at most the playback lead ahead, in
        whole frames (a chunk's remainder waits for the next; a sentence's last frame may be
        short, so that its end, where the listener's playback is marked, is exact)."""
        pacer = Pacer(response, self.playback_lead_ms / 1000)
        pending = bytearray()
        rate = 0
        sentence: int | None = None
        turn_id = response.turn_id
        while True:
            item = await playback.get()
            if isinstance(item, dialogue.TurnDone):
                break
            if sentence is None:
                rate = item.audio.sample_rate
                await self.emit(ev.AudioStarted(turn_id, rate))
            elif item.sentence_index != sentence:
                if pending:
                    await self._send_frame(pacer, bytes(pending), rate)
                    pending.clear()
                await self.emit(ev.SentenceSent(turn_id, sentence, round(pacer.sent_s * 1000)))
            sentence = item.sentence_index
            frame_bytes = rate * self.frame_ms // 1000 * 2
            pending += item.audio.pcm
            while len(pending) >= frame_bytes:
                await self._send_frame(pacer, bytes(pending[:frame_bytes]), rate)
                del pending[:frame_bytes]
        if pending:
            await self._send_frame(pacer, bytes(pending), rate)
        done = item
        if sentence is not None:
            await self.emit(ev.SentenceSent(turn_id, sentence, round(pacer.sent_s * 1000)))
            await self.emit(ev.AudioDone(turn_id))
        response.complete = True
        for call in response.requested:
            await self.emit(ev.ToolCallRequested(turn_id, call.id, call.name, call.arguments))
        cut = response.truncated_ms
        text = done.response_text if cut is None else response.heard.text_until(cut)
        await self.emit(
            ev.ResponseDone(
                turn_id,
                done.transcript,
                text,
                interrupted=cut is not None,
                timings=done.timings.as_dict(),
            )
        )
        if response.remember:
            await self.turns.remember(
                self.session,
                done.transcript,
                text,
                interrupted=cut is not None,
                tools=done.tools,
                resumes=response.resumes,
            )
            response.tools = done.tools
            response.stored = True


def _is_gone(error: BaseException) -> bool:
    """The transport's sink raised because the listener is gone: not a failure of the turn."""
    return getattr(error, "listener_gone", False) is True
