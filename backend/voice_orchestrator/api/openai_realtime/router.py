"""WebSocket /v1/realtime: the socket of the OpenAI Realtime protocol over the conversation core.

One connection is one conversation. The handshake is refused (HTTP 403) from a foreign browser
origin, as on every socket route, and without a valid key when ORCH_API_KEYS is set; the key
comes as ``Authorization: Bearer`` (the SDKs) or, from browsers, as the
``openai-insecure-api-key.KEY`` subprotocol. ``OpenAI-Beta: realtime=v1`` (or the
``openai-beta.realtime-v1`` subprotocol) selects the beta event names.
"""

from __future__ import annotations

import hmac
import json
import logging
from contextlib import AsyncExitStack
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from ...errors import IdleTimeout, InvalidRequest, OrchestratorError, Overloaded
from ...observability import session_id_var
from ...pipeline import events as ev
from ...pipeline.conversation import Conversation
from ...pipeline.sessions import new_session_id, owner_of
from ...pipeline.turns import SessionRef
from ..deps import Services
from ..errors import CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER
from ..middleware import presented_key
from ..origins import refuse_foreign_origin
from ..sockets import ListenerGone, closed_when_drained, receive, socket_slot
from .calls import chat_tools
from .input import Input
from .output import Responses
from .session import SessionConfig
from .wire import Dialect, Wire

logger = logging.getLogger(__name__)
router = APIRouter()

PATH = "/v1/realtime"
_KEY_PROTOCOL = "openai-insecure-api-key."


@router.websocket(PATH)
async def openai_realtime(websocket: WebSocket) -> None:
    if await refuse_foreign_origin(websocket):
        return
    services: Services = websocket.app.state.services
    protocols = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    key = _key(websocket, protocols)
    if services.settings.api_keys and not _authorized(services, key):
        await websocket.close(CLOSE_POLICY_VIOLATION)  # before accept: the client sees 403
        return
    beta = "realtime=v1" in websocket.headers.get("openai-beta", "").replace(" ", "")
    beta = beta or "openai-beta.realtime-v1" in protocols
    await websocket.accept(subprotocol="realtime" if "realtime" in protocols else None)
    owner = owner_of(key) if services.settings.api_keys else ""
    wire = Wire(websocket, "beta" if beta else "ga")
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(socket_slot(services, owner))
        except Overloaded as e:
            await wire.error(e)
            await websocket.close(CLOSE_TRY_AGAIN_LATER)
            return
        model = websocket.query_params.get("model") or "gpt-realtime"
        connection = _Connection(websocket, services, owner, wire, model)
        async with closed_when_drained(websocket, services.drain, connection.finished):
            await connection.run()


def _key(websocket: WebSocket, protocols: list[str]) -> bytes | None:
    for protocol in protocols:
        if protocol.startswith(_KEY_PROTOCOL) and len(protocol) > len(_KEY_PROTOCOL):
            return protocol[len(_KEY_PROTOCOL) :].encode("latin-1")
    return presented_key(websocket.scope)


def _authorized(services: Services, given: bytes | None) -> bool:
    if given is None:
        return False
    keys = [key.get_secret_value().encode() for key in services.settings.api_keys]
    # Every key is compared, so timing does not tell which one nearly matched.
    matches = [hmac.compare_digest(given, key) for key in keys]
    return any(matches)


class _Connection:
    def __init__(
        self, websocket: WebSocket, services: Services, owner: str, wire: Wire, model: str
    ) -> None:
        self._ws = websocket
        self._services = services
        self._wire = wire
        settings = services.settings
        session = SessionRef(owner, new_session_id())
        session_id_var.set(session.id)
        self._config = SessionConfig.initial(session.id, model, settings)
        self._responses = Responses(wire, self._config)
        self._input = Input(wire, self._config, self._responses)
        self._conversation = Conversation(
            services.turns,
            session,
            self._sink,
            self._config.options(settings),
            instructions=self._config.instructions,
        )
        self._input.conversation = self._responses.conversation = self._conversation

    async def finished(self) -> None:
        """Waits until no answer is under way (the instance drains)."""
        await self._conversation.wait_idle()

    async def run(self) -> None:
        settings = self._services.settings
        try:
            await self._send_session("session.created")
            while True:
                try:
                    message = await receive(self._ws, settings.ws_idle_timeout_s)
                except IdleTimeout as e:
                    await self._wire.error(e)
                    await self._ws.close(CLOSE_GOING_AWAY)
                    return
                if message["type"] == "websocket.disconnect":
                    return
                event: dict[str, Any] = {}
                try:
                    event = _parse(message.get("text"))
                    await self._dispatch(event)
                except ValidationError:  # an event of ours the SDK's model refuses
                    logger.exception("openai realtime event not sent")
                    await self._wire.error(OrchestratorError("An internal error occurred."))
                except OrchestratorError as e:
                    event_id = event.get("event_id")
                    await self._wire.error(
                        e, event_id=event_id if isinstance(event_id, str) else None
                    )
        except (ListenerGone, WebSocketDisconnect):
            return
        finally:
            await self._conversation.close()
            logger.info("openai realtime session closed", extra={"turns": self._conversation.turns})

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "session.update":
            await self._update(event.get("session"))
        elif kind == "input_audio_buffer.append":
            await self._input.append(event.get("audio"))
        elif kind == "input_audio_buffer.commit":
            await self._input.commit()
        elif kind == "input_audio_buffer.clear":
            await self._input.clear()
        elif kind == "conversation.item.create":
            await self._input.create_item(event.get("item"))
        elif kind == "conversation.item.truncate":
            await self._responses.truncate(event)
        elif kind == "response.create":
            await self._responses.create(event.get("response") or {}, self._input)
        elif kind in ("response.cancel", "output_audio_buffer.clear"):
            await self._responses.cancel()
        else:
            name = kind if isinstance(kind, str) else "?"
            raise InvalidRequest(f"Unsupported event type {name[:64]!r}.")

    async def _update(self, session: Any) -> None:
        if not isinstance(session, dict):
            raise InvalidRequest("session.update needs a session object.")
        settings = self._services.settings
        config = self._config.updated(session, settings)
        try:  # a shape the SDK's session model refuses (tools, say) changes nothing
            self._wire.build("session.updated", session=self._describe(config, supported=True))
            text = self._wire.build("session.updated", session=self._describe(config))
        except ValidationError:
            raise InvalidRequest("session.update holds fields of the wrong shape.") from None
        self._config.assign(config)
        conversation = self._conversation
        conversation.instructions = self._config.instructions
        conversation.voice = self._config.tts_voice
        conversation.language = self._config.language
        if self._services.turns.client_tools_supported:
            conversation.client_tools = chat_tools(self._config.tools, self._config.tool_choice)
        elif self._config.tools:
            logger.warning("realtime tools not offered: the language model cannot call tools")
        options = self._config.options(settings)
        if options != conversation.options:
            conversation.reconfigure(options)
        if text is not None:
            await self._wire.send_text(text)

    async def _send_session(self, kind: str) -> None:  # session.created
        await self._wire.send(kind, session=self._describe(self._config))

    def _describe(self, config: SessionConfig, *, supported: bool | None = None) -> dict[str, Any]:
        """The session as reported: no tools when the model cannot call any (``supported``
        True: the tools as given, to check their shape)."""
        services = self._services
        if supported is None:
            supported = services.turns.client_tools_supported
        stt_model = services.providers.stt.model
        return config.describe(self._wire.dialect, stt_model, tools_supported=supported)

    async def _sink(self, event: ev.ConversationEvent) -> None:
        if isinstance(event, ev.SpeechStarted | ev.SpeechStopped):
            await self._input.on_speech(event)
        elif isinstance(event, ev.ErrorRaised) and event.turn_id is None:
            await self._wire.error(event.error)
        else:
            await self._responses.on_event(event)


def _parse(text: str | None) -> dict[str, Any]:
    if text is None:
        raise InvalidRequest("Events are JSON text frames.")
    try:
        event = json.loads(text)
    except ValueError:
        raise InvalidRequest("An event is a JSON object with a type.") from None
    if not isinstance(event, dict):
        raise InvalidRequest("An event is a JSON object with a type.")
    return event


__all__ = ["PATH", "Dialect", "router"]
