"""WebSocket /api/v1/orchestrator/ws: our real-time protocol over the conversation core.

Binary frames in are 16-kHz PCM; JSON frames are the client messages of ``schemas``. The core's
events go out as the server messages of ``schemas`` and the answer's audio as binary frames.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.websockets import WebSocketDisconnect

from ..errors import IdleTimeout, InvalidAudio, InvalidRequest, OrchestratorError, Overloaded
from ..observability import session_id_var
from ..pipeline import events as ev
from ..pipeline.conversation import Conversation, ConversationOptions
from ..pipeline.sessions import new_session_id
from ..pipeline.turns import SessionRef
from ..pipeline.vad import SAMPLE_RATE
from .deps import Services
from .errors import CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_TRY_AGAIN_LATER
from .origins import refuse_foreign_origin
from .schemas import (
    AudioDoneEvent,
    AudioFormat,
    AudioPausedEvent,
    AudioResumedEvent,
    AudioStartEvent,
    ClientMessage,
    ErrorEvent,
    InputCommit,
    InterruptedEvent,
    PlaybackMark,
    ResponseCancel,
    ResponseDoneEvent,
    SessionEnd,
    SessionEnded,
    SessionStart,
    SessionStarted,
    SpeechStartedEvent,
    SpeechStoppedEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
    TranscriptFinalEvent,
)
from .sockets import ListenerGone, closed_when_drained, receive, socket_slot

logger = logging.getLogger(__name__)
router = APIRouter()

PATH = "/api/v1/orchestrator/ws"
MAX_FRAME_BYTES = 64 * 1024
_MESSAGES: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


@router.websocket(PATH)
async def realtime(websocket: WebSocket) -> None:
    if await refuse_foreign_origin(websocket):
        return
    services: Services = websocket.app.state.services
    await websocket.accept()
    owner = services.owner(websocket)
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(socket_slot(services, owner))
        except Overloaded as e:
            await websocket.send_text(error_event(e).model_dump_json(exclude_none=True))
            await websocket.close(CLOSE_TRY_AGAIN_LATER)
            return
        session = _Session(websocket, services, owner)
        async with closed_when_drained(websocket, services.drain, session.finished):
            await session.run()


def error_event(error: OrchestratorError, turn_id: str | None = None) -> ErrorEvent:
    return ErrorEvent(
        code=error.code,
        message=error.message,
        stage=error.stage,
        turn_id=turn_id,
        retry_after_s=error.retry_after_s,
    )


def _server_message(event: ev.ConversationEvent) -> BaseModel | None:
    """The server message of a core event; None for events this protocol does not carry."""
    match event:
        case ev.SpeechStarted():
            return SpeechStartedEvent()
        case ev.SpeechStopped():
            return SpeechStoppedEvent()
        case ev.TranscriptFinal(turn_id, text):
            return TranscriptFinalEvent(turn_id=turn_id, text=text)
        case ev.TextDelta(turn_id, text):
            return TextDeltaEvent(turn_id=turn_id, text=text)
        case ev.AudioStarted(turn_id, rate):
            return AudioStartEvent(turn_id=turn_id, sample_rate=rate)
        case ev.AudioPaused(turn_id):
            return AudioPausedEvent(turn_id=turn_id)
        case ev.AudioResumed(turn_id):
            return AudioResumedEvent(turn_id=turn_id)
        case ev.AudioDone(turn_id):
            return AudioDoneEvent(turn_id=turn_id)
        case ev.Interrupted(turn_id):
            return InterruptedEvent(turn_id=turn_id)
        case ev.ToolCalled(turn_id, call_id, name):
            return ToolCallEvent(turn_id=turn_id, call_id=call_id, name=name)
        case ev.ToolFinished(turn_id, call_id, _, ok, ms):
            return ToolResultEvent(turn_id=turn_id, call_id=call_id, ok=ok, ms=round(ms, 1))
        case ev.ResponseDone(turn_id, _, text, interrupted, timings):
            return ResponseDoneEvent(
                turn_id=turn_id, text=text, interrupted=interrupted, timings_ms=timings
            )
        case ev.ErrorRaised(error, turn_id):
            logger.info("realtime error sent", extra={"code": error.code})
            return error_event(error, turn_id)
    return None


class _Session:
    def __init__(self, websocket: WebSocket, services: Services, owner: str) -> None:
        self._ws = websocket
        self._services = services
        self._owner = owner
        self._conversation: Conversation | None = None
        self._send_lock = asyncio.Lock()

    async def finished(self) -> None:
        """Waits until no answer is under way."""
        if self._conversation is not None:
            await self._conversation.wait_idle()

    async def run(self) -> None:
        settings = self._services.settings
        try:
            while True:
                try:
                    message = await receive(self._ws, settings.ws_idle_timeout_s)
                except IdleTimeout as e:
                    await self._send(error_event(e))
                    await self._ws.close(CLOSE_GOING_AWAY)
                    return
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
                    await self._send(error_event(e))
        except (ListenerGone, WebSocketDisconnect):
            return
        finally:
            # Client gone or session over: every piece of work of this connection stops here.
            conversation = self._conversation
            if conversation is not None:
                await conversation.close()
            turns = conversation.turns if conversation is not None else 0
            logger.info("realtime session closed", extra={"turns": turns})

    async def _on_text(self, text: str) -> bool:
        """Handles one control message; False when the session is over."""
        if len(text) > MAX_FRAME_BYTES:
            raise InvalidRequest("Text frames must be at most 64 KiB.")
        try:
            message = _MESSAGES.validate_json(text)
        except ValidationError:
            raise InvalidRequest(
                "Expected a JSON object whose type is session.start, input.commit, "
                "response.cancel, playback.mark or session.end, with valid fields."
            ) from None
        if isinstance(message, SessionStart):
            if self._conversation is not None:
                raise InvalidRequest("session.start may only be the first message.")
            await self._start(message.session_id, message.voice)
            return True
        conversation = await self._started()
        if isinstance(message, InputCommit):
            await conversation.commit()
        elif isinstance(message, ResponseCancel):
            await conversation.cancel()
        elif isinstance(message, PlaybackMark):
            conversation.played(message.turn_id, message.played_ms)
        elif isinstance(message, SessionEnd):
            await conversation.cancel()
            await self._send(SessionEnded(session_id=conversation.session.id))
            await self._ws.close(CLOSE_NORMAL)
            return False
        return True

    async def _on_audio(self, data: bytes) -> None:
        conversation = await self._started()
        if len(data) > MAX_FRAME_BYTES:
            raise InvalidAudio("Audio frames must be at most 64 KiB.")
        if len(data) % 2:
            raise InvalidAudio("Audio frames must hold whole 16-bit samples (an even length).")
        await conversation.push_audio(data)

    async def _started(self) -> Conversation:
        if self._conversation is None:
            await self._start(None, None)
        assert self._conversation is not None
        return self._conversation

    async def _start(self, session_id: str | None, voice: str | None) -> None:
        services = self._services
        settings = services.settings
        session = SessionRef(self._owner, session_id or new_session_id())
        session_id_var.set(session.id)
        resumed = bool(session_id) and bool(await services.turns.history(session))
        self._conversation = Conversation(
            services.turns,
            session,
            self._sink,
            ConversationOptions(
                playback_lead_ms=settings.playback_lead_ms,
                vad_start_ms=settings.vad_start_ms,
                vad_silence_ms=settings.vad_silence_ms,
                min_audio_s=settings.min_audio_s,
                max_audio_s=settings.max_audio_s,
            ),
            voice=voice,
        )
        logger.info("realtime session started", extra={"resumed": resumed})
        await self._send(
            SessionStarted(
                session_id=session.id,
                resumed=resumed,
                input_audio=AudioFormat(sample_rate=SAMPLE_RATE),
                output_audio=AudioFormat(),
            )
        )

    async def _sink(self, event: ev.ConversationEvent) -> None:
        if isinstance(event, ev.AudioFrame):
            await self._send_frame(data=event.pcm)
        elif (message := _server_message(event)) is not None:
            await self._send(message)

    async def _send(self, message: BaseModel) -> None:
        await self._send_frame(text=message.model_dump_json(exclude_none=True))

    async def _send_frame(self, *, text: str | None = None, data: bytes | None = None) -> None:
        async with self._send_lock:
            try:
                if text is not None:
                    await self._ws.send_text(text)
                else:
                    await self._ws.send_bytes(data or b"")
            except (WebSocketDisconnect, RuntimeError, OSError) as e:
                raise ListenerGone from e
