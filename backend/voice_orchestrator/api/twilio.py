"""Twilio phone calls: the voice webhook answers TwiML that connects the call to a bidirectional
Media Stream, and the stream carries the call over the conversation core.

In: ``connected``, ``start`` (its token is checked before anything else), ``media`` (8-kHz
μ-law), ``mark`` (the echo of a mark once its audio has played), ``dtmf``, ``stop``. Out:
``media`` in 20-ms frames paced as the caller hears them, a ``mark`` after each sentence, and
``clear`` when the caller barges in. The marks that come back are what the caller heard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, aclosing
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import Response
from starlette.websockets import WebSocketDisconnect

from ..errors import Forbidden, InvalidRequest, Overloaded
from ..g711 import ulaw_decode, ulaw_encode
from ..observability import session_id_var
from ..patterns import SESSION_ID
from ..pipeline import events as ev
from ..pipeline.conversation import Conversation
from ..pipeline.turns import SessionRef
from ..telephony import (
    CALL_TOKEN_TTL_S,
    TWILIO_SIGNATURE_HEADER,
    TWILIO_STREAM_PATH,
    TWILIO_VOICE_PATH,
    external_url,
    sign_call_token,
    twiml_connect_stream,
    valid_twilio_signature,
    verify_call_token,
    websocket_url,
)
from ..telephony_messages import (
    TWILIO_SAMPLE_RATE,
    TwilioConnected,
    TwilioDtmf,
    TwilioMark,
    TwilioMedia,
    TwilioStart,
    TwilioStop,
    parse_twilio_message,
    twilio_clear_message,
    twilio_mark_message,
    twilio_media_message,
)
from .calls import Sender, call_options, text_messages
from .deps import Services, ServicesDep
from .errors import CLOSE_NORMAL, CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER
from .origins import refuse_foreign_origin
from .schemas import ErrorBody
from .sockets import ListenerGone, socket_slot

logger = logging.getLogger(__name__)
router = APIRouter()

_WEBHOOK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["CallSid"],
                    "properties": {"CallSid": {"type": "string", "pattern": SESSION_ID.pattern}},
                    "additionalProperties": {"type": "string"},
                }
            }
        },
    }
}


@router.post(
    TWILIO_VOICE_PATH,
    summary="Twilio voice webhook: connect the call to the media stream",
    tags=["telephony"],
    response_class=Response,
    responses={
        200: {
            "description": "TwiML `<Connect><Stream>` with the call's session id and token",
            "content": {"text/xml": {"schema": {"type": "string"}}},
        },
        400: {"model": ErrorBody, "description": "No valid CallSid"},
        403: {"model": ErrorBody, "description": "Missing or wrong X-Twilio-Signature"},
    },
    openapi_extra=_WEBHOOK_BODY,
)
async def twilio_voice(request: Request, services: ServicesDep) -> Response:
    settings = services.settings
    body = (await request.body()).decode("utf-8", "replace")
    form = parse_qsl(body, keep_blank_values=True)
    public = settings.public_url
    token = settings.twilio_auth_token
    if token is not None and token.get_secret_value():
        url = (
            external_url(public, TWILIO_VOICE_PATH, request.url.query)
            if public
            else str(request.url)
        )
        signature = request.headers.get(TWILIO_SIGNATURE_HEADER, "")
        if not valid_twilio_signature(token.get_secret_value(), url, form, signature):
            raise Forbidden("The X-Twilio-Signature of this webhook is missing or wrong.")
    call_sid = dict(form).get("CallSid", "")
    if not SESSION_ID.match(call_sid):
        raise InvalidRequest("The webhook needs the call's CallSid.")
    stream_url = websocket_url(public or str(request.base_url), TWILIO_STREAM_PATH)
    call_token = sign_call_token(
        services.call_token_secret, call_sid, CALL_TOKEN_TTL_S, time.time()
    )
    twiml = twiml_connect_stream(stream_url, {"session_id": call_sid, "token": call_token})
    session_id_var.set(call_sid)
    logger.info("phone call answered", extra={"provider": "twilio"})
    return Response(twiml, media_type="text/xml")


@router.websocket(TWILIO_STREAM_PATH)
async def twilio_stream(websocket: WebSocket) -> None:
    if await refuse_foreign_origin(websocket):
        return
    services: Services = websocket.app.state.services
    await websocket.accept()
    await _TwilioCall(websocket, services).run()


class _TwilioCall:
    def __init__(self, websocket: WebSocket, services: Services) -> None:
        self._ws = websocket
        self._services = services
        self._sender = Sender(websocket)
        self._stream_sid = ""
        self._conversation: Conversation | None = None
        # Marks sent and not yet echoed: name → (turn id, the turn's audio up to the mark, ms).
        self._marks: dict[str, tuple[str, int]] = {}

    async def run(self) -> None:
        settings = self._services.settings
        messages = text_messages(self._ws, self._sender, settings.ws_idle_timeout_s)
        try:
            async with aclosing(messages):
                start = await self._authorized_start(messages)
                if start is None:
                    return
                async with AsyncExitStack() as stack:
                    try:
                        await stack.enter_async_context(socket_slot(self._services, ""))
                    except Overloaded:
                        logger.warning("phone call refused", extra={"reason": "overloaded"})
                        await self._sender.close(CLOSE_TRY_AGAIN_LATER)
                        return
                    await self._call(start, messages)
        except (ListenerGone, WebSocketDisconnect):
            return

    async def _authorized_start(self, messages: AsyncGenerator[str, None]) -> TwilioStart | None:
        """Waits for ``start``; None (the socket closed with 1008) unless it carries a valid
        token for its call. Only one ``connected`` may come before it: a stream that has not
        proved its call holds no slot, and cannot linger either."""
        connected = False
        async for text in messages:
            try:
                message = parse_twilio_message(text)
            except ValueError:
                message = None
            if isinstance(message, TwilioConnected) and not connected:
                connected = True
                continue
            if isinstance(message, TwilioStart):
                info = message.start
                token = info.custom_parameters.get("token", "")
                secret = self._services.call_token_secret
                if verify_call_token(secret, token, info.call_sid, time.time()):
                    return message
            logger.warning("phone stream refused", extra={"reason": "no valid call token"})
            await self._sender.close(CLOSE_POLICY_VIOLATION)
            return None
        return None

    async def _call(self, start: TwilioStart, messages: AsyncGenerator[str, None]) -> None:
        services = self._services
        settings = services.settings
        info = start.start
        self._stream_sid = info.stream_sid
        session_id_var.set(info.call_sid)
        conversation = Conversation(
            services.turns,
            SessionRef("", info.call_sid),
            self._sink,
            call_options(settings, TWILIO_SAMPLE_RATE, TWILIO_SAMPLE_RATE),
        )
        self._conversation = conversation
        logger.info("phone call started", extra={"provider": "twilio"})
        stopped = False
        try:
            if settings.telephony_greeting:
                await conversation.say(settings.telephony_greeting)
            async for text in messages:
                if not await self._on_message(conversation, text):
                    stopped = True
                    break
        finally:
            await conversation.close()
            logger.info("phone call ended", extra={"turns": conversation.turns})
        if stopped:  # every piece of work of the call is over before the socket closes
            await self._sender.close(CLOSE_NORMAL)

    async def _on_message(self, conversation: Conversation, text: str) -> bool:
        """Handles one message of the call; False once the call is over."""
        try:
            message = parse_twilio_message(text)
        except ValueError:
            logger.info("phone message skipped", extra={"reason": "malformed"})
            return True
        if isinstance(message, TwilioMedia):
            if message.media.track == "inbound":
                await conversation.push_audio(ulaw_decode(message.audio()))
        elif isinstance(message, TwilioMark):
            heard = self._marks.pop(message.mark.name, None)
            if heard is not None:
                conversation.played(*heard)
        elif isinstance(message, TwilioDtmf):
            logger.debug("phone digit ignored", extra={"digit": message.dtmf.digit})
        elif isinstance(message, TwilioStop):
            return False
        return True

    async def _sink(self, event: ev.ConversationEvent) -> None:
        send = self._sender.send
        match event:
            case ev.ResponseStarted(turn_id):
                # A new answer: the marks of earlier ones no longer count.
                self._marks = {k: v for k, v in self._marks.items() if v[0] == turn_id}
            case ev.AudioStarted(turn_id, _):
                # Until a mark comes back the caller has heard nothing of it.
                if self._conversation is not None:
                    self._conversation.played(turn_id, 0)
            case ev.AudioFrame(_, pcm, _):
                await send(twilio_media_message(self._stream_sid, ulaw_encode(pcm)))
            case ev.SentenceSent(turn_id, index, end_ms):
                name = f"{turn_id}:{index}"
                self._marks[name] = (turn_id, end_ms)
                await send(twilio_mark_message(self._stream_sid, name))
            case ev.Interrupted(turn_id):
                # Twilio drops what it has queued and echoes the pending marks at once: those
                # were not heard.
                self._marks = {k: v for k, v in self._marks.items() if v[0] != turn_id}
                await send(twilio_clear_message(self._stream_sid))
            case ev.ErrorRaised(error, _):
                logger.info("phone call error", extra={"code": error.code})
