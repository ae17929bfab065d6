"""WebSocket /api/v1/orchestrator/ws: a spoken conversation in real time, with barge-in.

One ``Conversation`` per connection. Its receive loop feeds PCM to the voice activity detector
and handles control messages; each turn runs as one task owned by the conversation. A turn has
two halves: the producer runs the dialogue turn while holding a dialogue slot, and the player
sends the audio paced at real time, at most ``ORCH_PLAYBACK_LEAD_MS`` ahead of the listener, so
the slot is freed as soon as synthesis ends rather than when playback does. Barge-in cancels the
turn's task and waits for it, so no frame of that turn can follow ``response.interrupted``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import TypeAdapter, ValidationError
from starlette.websockets import WebSocketDisconnect

from ..audio import Audio
from ..errors import AudioTooShort, InvalidAudio, InvalidRequest, OrchestratorError, Overloaded
from ..observability import session_id_var
from ..pipeline.dialogue import (
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
from ..pipeline.redaction import redact
from ..pipeline.sessions import Turn, build_context
from ..pipeline.vad import (
    SAMPLE_RATE,
    Segmenter,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    SpeechStopped,
    WebRtcClassifier,
)
from .deps import Services
from .schemas import ClientMessage, InputCommit, ResponseCancel, SessionEnd, SessionStart

logger = logging.getLogger(__name__)
router = APIRouter()

PATH = "/api/v1/orchestrator/ws"
MAX_FRAME_BYTES = 64 * 1024
FRAME_MS = 20
CLOSE_NORMAL = 1000
CLOSE_TRY_AGAIN_LATER = 1013
INPUT_AUDIO = {"format": "pcm_s16le", "sample_rate": SAMPLE_RATE, "channels": 1}
OUTPUT_AUDIO = {"format": "pcm_s16le", "channels": 1}
_MESSAGES: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


@router.websocket(PATH)
async def realtime(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    await websocket.accept()
    if services.open_sockets >= services.settings.max_sessions:
        error = Overloaded(
            f"All {services.settings.max_sessions} real-time sessions are in use; retry later."
        )
        await websocket.send_text(json.dumps(_error_event(error, None)))
        await websocket.close(CLOSE_TRY_AGAIN_LATER)
        return
    services.open_sockets += 1
    try:
        await Conversation(websocket, services).run()
    finally:
        services.open_sockets -= 1


class _Gone(Exception):
    """The client closed the connection while something was being sent."""


@dataclass
class _Spoken:
    """One sentence of a reply and how much of its audio has been sent."""

    text: str
    known_bytes: int = 0
    sent_bytes: int = 0


@dataclass
class _Response:
    """The state of one turn, as its sending side and an interruption need it."""

    turn_id: str
    audio: Audio
    transcript: str | None = None
    timings: TurnTimings = field(default_factory=TurnTimings)
    sentences: dict[int, _Spoken] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    @property
    def audio_sent(self) -> bool:
        return any(spoken.sent_bytes for spoken in self.sentences.values())

    def spoken_text(self) -> str:
        """The reply as far as its audio was sent: whole sentences, then the words of the
        sentence cut short in proportion to its audio that went out."""
        parts: list[str] = []
        for index in sorted(self.sentences):
            spoken = self.sentences[index]
            if spoken.sent_bytes == 0:
                break
            if spoken.sent_bytes >= spoken.known_bytes:
                parts.append(spoken.text)
                continue
            words = spoken.text.split()
            count = math.ceil(len(words) * spoken.sent_bytes / spoken.known_bytes)
            parts.append(" ".join(words[:count]))
            break
        return " ".join(part.strip() for part in parts if part.strip())


class Conversation:
    def __init__(self, websocket: WebSocket, services: Services) -> None:
        self._ws = websocket
        self._services = services
        settings = services.settings
        self._settings = settings
        self._segmenter = Segmenter(
            WebRtcClassifier(),
            start_ms=settings.vad_start_ms,
            silence_ms=settings.vad_silence_ms,
            max_utterance_s=settings.max_audio_s,
        )
        self._send_lock = asyncio.Lock()
        self._session_id: str | None = None
        self._voice: str | None = None
        self._response: _Response | None = None
        self._early: EarlyTranscription | None = None
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._turns = 0
        self._carried: Audio | None = None

    async def run(self) -> None:
        try:
            while True:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    if (data := message.get("bytes")) is not None:
                        await self._on_audio(data)
                    elif (text := message.get("text")) is not None and not await self._on_text(
                        text
                    ):
                        return
                except OrchestratorError as e:  # e.g. the session store is unreachable
                    await self._send_error(e)
        except (_Gone, WebSocketDisconnect):
            return
        finally:
            # Client gone or session over: every piece of work of this connection stops here.
            await self._cancel_response()
            self._drop_early()
            if self._abandoned:
                await asyncio.wait(self._abandoned)
            logger.info("realtime session closed", extra={"turns": self._turns})

    # -- input -------------------------------------------------------------------------------

    async def _on_text(self, text: str) -> bool:
        """Handles one control message; False when the session is over."""
        if len(text) > MAX_FRAME_BYTES:
            await self._send_error(InvalidRequest("Text frames must be at most 64 KiB."))
            return True
        try:
            message = _MESSAGES.validate_json(text)
        except ValidationError:
            await self._send_error(
                InvalidRequest(
                    "Expected a JSON object whose type is session.start, input.commit, "
                    "response.cancel or session.end, with valid fields."
                )
            )
            return True
        if isinstance(message, SessionStart):
            if self._session_id is not None:
                await self._send_error(
                    InvalidRequest("session.start may only be the first message.")
                )
                return True
            await self._start(message.session_id, message.voice)
            return True
        await self._ensure_started()
        if isinstance(message, InputCommit):
            await self._commit()
        elif isinstance(message, ResponseCancel):
            await self._interrupt(carry=False)
        elif isinstance(message, SessionEnd):
            await self._cancel_response(notify=True)
            await self._send({"type": "session.ended", "session_id": self._session_id})
            await self._ws.close(CLOSE_NORMAL)
            return False
        return True

    async def _on_audio(self, data: bytes) -> None:
        await self._ensure_started()
        if len(data) > MAX_FRAME_BYTES:
            await self._send_error(InvalidAudio("Audio frames must be at most 64 KiB."))
            return
        if len(data) % 2:
            await self._send_error(
                InvalidAudio("Audio frames must hold whole 16-bit samples (an even length).")
            )
            return
        for event in self._segmenter.push(data):
            if isinstance(event, SpeechStarted):
                # Barge-in first: stopping the assistant is what the user waits for.
                await self._interrupt(carry=True)
                await self._send({"type": "speech.started"})
            elif isinstance(event, SpeechPaused):
                self._start_early(event.audio)
            elif isinstance(event, SpeechResumed):
                self._drop_early()
            elif isinstance(event, SpeechStopped):
                await self._send({"type": "speech.stopped"})
                await self._begin(event.audio, keep_early=True)

    async def _commit(self) -> None:
        was_speaking = self._segmenter.speaking
        audio = self._segmenter.commit()
        if was_speaking:
            await self._send({"type": "speech.stopped"})
        if audio is None or audio.duration_s < self._settings.min_audio_s:
            self._drop_early()
            await self._send_error(
                AudioTooShort(
                    f"Nothing to answer: commit at least {self._settings.min_audio_s} s of audio."
                )
            )
            return
        await self._begin(audio, keep_early=False)

    async def _ensure_started(self) -> None:
        if self._session_id is None:
            await self._start(None, None)

    async def _start(self, session_id: str | None, voice: str | None) -> None:
        self._session_id = session_id or uuid.uuid4().hex
        self._voice = voice
        session_id_var.set(self._session_id)
        resumed = bool(session_id) and bool(await self._services.sessions.history(session_id or ""))
        logger.info("realtime session started", extra={"resumed": resumed})
        await self._send(
            {
                "type": "session.started",
                "session_id": self._session_id,
                "resumed": resumed,
                "input_audio": INPUT_AUDIO,
                "output_audio": OUTPUT_AUDIO,
            }
        )

    # -- turns -------------------------------------------------------------------------------

    def _start_early(self, audio: Audio) -> None:
        """Transcribes the utterance so far while waiting to know whether it is over."""
        self._drop_early()
        stt = self._services.providers.stt
        self._early = EarlyTranscription.start(stt.transcribe(self._with_carried(audio)))

    def _drop_early(self) -> None:
        if self._early is not None:
            self._abandon(self._early.task)
            self._early = None

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        """Cancels a task without waiting; the conversation still awaits it before it ends."""
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed speculative transcription is not news

    def _with_carried(self, audio: Audio) -> Audio:
        """The utterance with the words of a turn the user cut short before its answer began:
        they went on speaking, so both parts are one question."""
        if self._carried is None:
            return audio
        joined = Audio.concatenate([self._carried, audio], audio.sample_rate)
        keep = int(self._settings.max_audio_s * audio.sample_rate) * 2
        return Audio(joined.pcm[-keep:], audio.sample_rate)

    async def _begin(self, audio: Audio, *, keep_early: bool) -> None:
        ended_at = time.perf_counter()
        await self._interrupt(carry=False)
        audio = self._with_carried(audio)
        self._carried = None
        early = self._early if keep_early else None
        if early is None:
            self._drop_early()
        self._early = None
        self._turns += 1
        response = _Response(turn_id=uuid.uuid4().hex[:12], audio=audio)
        response.task = asyncio.create_task(self._respond(response, audio, early, ended_at))
        self._response = response

    async def _interrupt(self, *, carry: bool) -> None:
        """Barge-in or response.cancel: stops the current turn, if one is under way. With
        ``carry``, a turn cut before any of its answer was sent passes its audio on to the next
        utterance instead of entering the history."""
        await self._cancel_response(notify=True, carry=carry)

    async def _cancel_response(self, *, notify: bool = False, carry: bool = False) -> None:
        response, self._response = self._response, None
        if response is None or response.task is None or response.task.done():
            return
        response.task.cancel()
        await asyncio.wait({response.task})
        if not notify:
            return
        spoken = response.spoken_text()
        await self._send({"type": "response.interrupted", "turn_id": response.turn_id})
        await self._send(
            {
                "type": "response.done",
                "turn_id": response.turn_id,
                "text": self._redacted(spoken),
                "interrupted": True,
                "timings_ms": response.timings.as_dict(),
            }
        )
        if carry and not response.audio_sent:
            self._carried = response.audio
        elif response.transcript is not None:
            await self._remember(response.transcript, spoken)

    async def _respond(
        self,
        response: _Response,
        audio: Audio,
        early: EarlyTranscription | None,
        ended_at: float,
    ) -> None:
        playback: asyncio.Queue[AudioChunk | TurnDone] = asyncio.Queue()
        failure: OrchestratorError | None = None
        gone = False
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._produce(response, audio, early, ended_at, playback))
                group.create_task(self._play(response, playback))
        except* _Gone:
            gone = True
        except* OrchestratorError as group:
            first = group.exceptions[0]
            assert isinstance(first, OrchestratorError)
            failure = first
        except* Exception:
            logger.exception("realtime turn failed")
            failure = OrchestratorError("The turn failed.")
        if failure is not None and not gone:
            try:
                await self._send_error(failure, response.turn_id)
            except _Gone:
                return

    async def _produce(
        self,
        response: _Response,
        audio: Audio,
        early: EarlyTranscription | None,
        ended_at: float,
        playback: asyncio.Queue[AudioChunk | TurnDone],
    ) -> None:
        services = self._services
        settings = self._settings
        async with services.slots.acquire():
            history = await services.sessions.history(self._session_id or "")
            turn = DialogueTurn(
                providers=services.providers,
                audio=audio,
                context=build_context(settings.llm.system_prompt, history),
                started_at=ended_at,
                voice=self._voice,
                timeouts=StageTimeouts(
                    stt_s=settings.stt.timeout_s,
                    llm_s=settings.llm.timeout_s,
                    tts_s=settings.tts.timeout_s,
                ),
                timings=response.timings,
                early=early,
                max_output_s=settings.max_output_s,
            )
            events = services.telemetry.observe(turn)
            try:
                async for event in events:
                    await self._on_turn_event(response, event, playback)
            finally:
                await events.aclose()

    async def _on_turn_event(
        self,
        response: _Response,
        event: TurnEvent,
        playback: asyncio.Queue[AudioChunk | TurnDone],
    ) -> None:
        if isinstance(event, TranscriptReady):
            response.transcript = self._redacted(event.text)
            await self._send(
                {
                    "type": "transcript.final",
                    "turn_id": response.turn_id,
                    "text": response.transcript,
                }
            )
        elif isinstance(event, TextDelta):
            await self._send(
                {"type": "response.text.delta", "turn_id": response.turn_id, "text": event.text}
            )
        elif isinstance(event, AudioChunk):
            spoken = response.sentences.setdefault(event.sentence_index, _Spoken(event.sentence))
            spoken.known_bytes += len(event.audio.pcm)
            playback.put_nowait(event)
        else:
            playback.put_nowait(event)

    async def _play(
        self, response: _Response, playback: asyncio.Queue[AudioChunk | TurnDone]
    ) -> None:
        """Sends the turn's audio at real-time pace, at most the playback lead ahead."""
        loop = asyncio.get_running_loop()
        lead_s = self._settings.playback_lead_ms / 1000
        started: float | None = None  # loop time at which the listener's playback began
        sent_s = 0.0
        while True:
            item = await playback.get()
            if isinstance(item, TurnDone):
                break
            rate = item.audio.sample_rate
            if started is None:
                start = {"type": "response.audio.start", "turn_id": response.turn_id}
                await self._send({**start, "sample_rate": rate})
            frame_bytes = rate * FRAME_MS // 1000 * 2
            pcm = item.audio.pcm
            spoken = response.sentences[item.sentence_index]
            for offset in range(0, len(pcm), frame_bytes):
                now = loop.time()
                # After a gap (synthesis slower than playback) the listener started over.
                if started is None or now - started > sent_s:
                    started = now - sent_s
                ahead = sent_s - (now - started)
                if ahead > lead_s:
                    await asyncio.sleep(ahead - lead_s)
                frame = pcm[offset : offset + frame_bytes]
                await self._send_bytes(frame)
                spoken.sent_bytes += len(frame)
                sent_s += len(frame) / 2 / rate
        done = item
        await self._send({"type": "response.audio.done", "turn_id": response.turn_id})
        text = self._redacted(done.response_text)
        await self._send(
            {
                "type": "response.done",
                "turn_id": response.turn_id,
                "text": text,
                "interrupted": False,
                "timings_ms": done.timings.as_dict(),
            }
        )
        await self._remember(done.transcript, done.response_text)

    async def _remember(self, transcript: str, reply: str) -> None:
        if self._session_id is not None:
            turn = Turn(self._redacted(transcript), self._redacted(reply))
            await self._services.sessions.append(self._session_id, turn)

    def _redacted(self, text: str) -> str:
        return redact(text) if self._settings.redact else text

    # -- output ------------------------------------------------------------------------------

    async def _send(self, event: dict[str, Any]) -> None:
        await self._send_frame(text=json.dumps(event, ensure_ascii=False))

    async def _send_bytes(self, data: bytes) -> None:
        await self._send_frame(data=data)

    async def _send_frame(self, *, text: str | None = None, data: bytes | None = None) -> None:
        async with self._send_lock:
            try:
                if text is not None:
                    await self._ws.send_text(text)
                else:
                    await self._ws.send_bytes(data or b"")
            except (WebSocketDisconnect, RuntimeError, OSError) as e:
                raise _Gone from e

    async def _send_error(self, error: OrchestratorError, turn_id: str | None = None) -> None:
        logger.info("realtime error sent", extra={"code": error.code})
        await self._send(_error_event(error, turn_id))


def _error_event(error: OrchestratorError, turn_id: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "error",
        "code": error.code,
        "message": error.message,
        "stage": error.stage,
    }
    if turn_id is not None:
        event["turn_id"] = turn_id
    if error.retry_after_s is not None:
        event["retry_after_s"] = error.retry_after_s
    return event
