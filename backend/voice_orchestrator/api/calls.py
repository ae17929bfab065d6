"""What the phone transports (Twilio, Azure Communication Services) share: the conversation
options of a call, and a sender that serializes text frames and turns a gone caller into
``ListenerGone``. Protocol logic stays in each transport; turn logic in the conversation core."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import suppress

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from ..errors import IdleTimeout
from ..pipeline.conversation import ConversationOptions
from ..pipeline.vad import FRAME_MS
from ..settings import Settings
from .errors import CLOSE_GOING_AWAY
from .sockets import ListenerGone, receive

logger = logging.getLogger(__name__)

# Provider messages are small (a 20-ms frame is under 1 KiB of JSON); anything far larger is
# not theirs.
MAX_MESSAGE_CHARS = 64 * 1024


def call_options(settings: Settings, input_rate: int, output_rate: int) -> ConversationOptions:
    """A phone call's conversation: the provider's rates, 20-ms frames, the service's
    turn-taking settings."""
    return ConversationOptions(
        input_rate=input_rate,
        output_rate=output_rate,
        frame_ms=FRAME_MS,
        playback_lead_ms=settings.playback_lead_ms,
        vad_start_ms=settings.vad_start_ms,
        vad_silence_ms=settings.vad_silence_ms,
        min_audio_s=settings.min_audio_s,
        max_audio_s=settings.max_audio_s,
    )


class Sender:
    """Sends text frames one at a time; a send to a gone caller raises ``ListenerGone``."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        self._lock = asyncio.Lock()

    async def send(self, text: str) -> None:
        async with self._lock:
            try:
                await self._ws.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError) as e:
                raise ListenerGone from e

    async def close(self, code: int) -> None:
        """Closes the socket unless it is already gone."""
        async with self._lock:
            with suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self._ws.close(code)


async def text_messages(
    websocket: WebSocket, sender: Sender, idle_timeout_s: float
) -> AsyncGenerator[str, None]:
    """The provider's text frames until the socket closes or stays silent too long (then it is
    closed with 1001). Binary and oversized frames are skipped: no provider sends them."""
    while True:
        try:
            message = await receive(websocket, idle_timeout_s)
        except IdleTimeout:
            logger.info("phone call idle, closed")
            await sender.close(CLOSE_GOING_AWAY)
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None or len(text) > MAX_MESSAGE_CHARS:
            logger.info("phone call frame skipped", extra={"binary": text is None})
            continue
        yield text
