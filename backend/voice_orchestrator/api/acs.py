"""Azure Communication Services phone calls: Call Automation's bidirectional media streaming
over the conversation core.

In: ``AudioMetadata`` (the stream's PCM rate, 16 or 24 kHz), ``AudioData`` (base64 PCM s16le
mono), ``DtmfData``. Out: ``AudioData`` in 20-ms frames paced as the caller hears them, and
``StopAudio`` when the caller barges in. ACS reports no playback, so the history keeps what was
sent when an answer is cut.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack, aclosing

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from ..errors import Overloaded
from ..observability import session_id_var
from ..pipeline import events as ev
from ..pipeline.conversation import Conversation
from ..pipeline.sessions import new_session_id
from ..pipeline.turns import SessionRef
from ..telephony import ACS_STREAM_PATH
from ..telephony_messages import (
    AcsAudioData,
    AcsAudioMetadata,
    AcsDtmfData,
    acs_audio_message,
    acs_stop_audio_message,
    parse_acs_message,
)
from .calls import Sender, call_options, text_messages
from .deps import Services
from .errors import CLOSE_TRY_AGAIN_LATER
from .origins import refuse_foreign_origin
from .sockets import ListenerGone, socket_slot

logger = logging.getLogger(__name__)
router = APIRouter()

ACS_RATES = (16000, 24000)
CLOSE_UNSUPPORTED_DATA = 1003  # RFC 6455: a stream format this service does not take


@router.websocket(ACS_STREAM_PATH)
async def acs_stream(websocket: WebSocket) -> None:
    if await refuse_foreign_origin(websocket):
        return
    services: Services = websocket.app.state.services
    await websocket.accept()
    sender = Sender(websocket)
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(socket_slot(services, services.owner(websocket)))
        except Overloaded:
            logger.warning("phone call refused", extra={"reason": "overloaded"})
            await sender.close(CLOSE_TRY_AGAIN_LATER)
            return
        try:
            await _AcsCall(websocket, services, sender).run()
        except (ListenerGone, WebSocketDisconnect):
            return


class _AcsCall:
    def __init__(self, websocket: WebSocket, services: Services, sender: Sender) -> None:
        self._ws = websocket
        self._services = services
        self._sender = sender
        self._conversation: Conversation | None = None

    async def run(self) -> None:
        settings = self._services.settings
        messages = text_messages(self._ws, self._sender, settings.ws_idle_timeout_s)
        try:
            async with aclosing(messages):
                async for text in messages:
                    if not await self._on_message(text):
                        return
        finally:
            conversation = self._conversation
            if conversation is not None:
                await conversation.close()
                logger.info("phone call ended", extra={"turns": conversation.turns})

    async def _on_message(self, text: str) -> bool:
        """Handles one message of the call; False when the call cannot go on."""
        try:
            message = parse_acs_message(text)
        except ValueError:
            logger.info("phone message skipped", extra={"reason": "malformed"})
            return True
        if isinstance(message, AcsAudioMetadata):
            if self._conversation is None:
                return await self._start(message.audio_metadata.sample_rate)
        elif isinstance(message, AcsAudioData):
            if self._conversation is None and not await self._start(ACS_RATES[0]):
                return False
            assert self._conversation is not None
            pcm = message.audio()
            if len(pcm) % 2 == 0:
                await self._conversation.push_audio(pcm)
        elif isinstance(message, AcsDtmfData):
            logger.debug("phone digit ignored", extra={"digit": message.dtmf_data.data})
        return True

    async def _start(self, rate: int) -> bool:
        if rate not in ACS_RATES:
            logger.warning("phone stream refused", extra={"reason": "sample rate", "rate": rate})
            await self._sender.close(CLOSE_UNSUPPORTED_DATA)
            return False
        services = self._services
        settings = services.settings
        session = SessionRef(services.owner(self._ws), new_session_id())
        session_id_var.set(session.id)
        conversation = Conversation(
            services.turns, session, self._sink, call_options(settings, rate, rate)
        )
        self._conversation = conversation
        logger.info("phone call started", extra={"provider": "acs", "rate": rate})
        if settings.telephony_greeting:
            await conversation.say(settings.telephony_greeting)
        return True

    async def _sink(self, event: ev.ConversationEvent) -> None:
        match event:
            case ev.AudioFrame(_, pcm, _):
                await self._sender.send(acs_audio_message(pcm))
            case ev.Interrupted():
                await self._sender.send(acs_stop_audio_message())
            case ev.ErrorRaised(error, _):
                logger.info("phone call error", extra={"code": error.code})
