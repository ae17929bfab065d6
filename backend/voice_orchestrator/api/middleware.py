"""Pure ASGI middleware: request ids and the last-resort error handler, the upload cap, API
keys and the drain guard."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import uuid
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..drain import Drain
from ..errors import Draining, OrchestratorError, PayloadTooLarge, RequestTimeout, Unauthorized
from ..observability import request_id_var, session_id_var
from ..telephony import TWILIO_STREAM_PATH, TWILIO_VOICE_PATH
from .errors import from_exception, internal_error

logger = logging.getLogger(__name__)

VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Twilio presents no API key: its webhook is checked by signature and its stream by call token.
KEYLESS_PATHS = frozenset({TWILIO_VOICE_PATH, TWILIO_STREAM_PATH})


class RequestContext:
    """Gives every HTTP request an id (the client's own when valid), puts it in the logging
    context and on every response, and turns anything unhandled into a 500 without a trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and VALID_REQUEST_ID.match(given) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        session_token = session_id_var.set(None)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except OrchestratorError as e:
            if scope["type"] == "http" and not started:
                await from_exception(e)(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error")
            if scope["type"] == "http" and not started:
                await internal_error()(scope, receive, send_with_id)
        finally:
            session_id_var.reset(session_token)
            request_id_var.reset(token)


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` while they arrive: at once when the declared
    length is too big, else as soon as the running count passes the cap. The whole body must
    arrive within ``timeout_s`` of the first read, so a client trickling bytes cannot hold a
    connection (and its buffers) for ever."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await from_exception(self._error())(scope, receive, send)
            return
        received = 0
        deadline: float | None = None

        async def counted() -> Message:
            nonlocal received, deadline
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + self.timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"The request body did not arrive within {self.timeout_s:g} s."
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._error()
            return message

        await self.app(scope, counted, send)

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body exceeds the limit of {self.max_bytes} bytes.")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class ApiKeyAuth:
    """When keys are configured, every ``/api`` route needs one, as ``Authorization: Bearer
    KEY`` or ``X-API-Key: KEY`` (WebSocket clients in browsers may use ``?api_key=KEY``).
    Keys are compared in constant time; ``/health``, ``/metrics`` and ``/docs`` stay open, and
    so do Twilio's two routes (``KEYLESS_PATHS``)."""

    def __init__(self, app: ASGIApp, keys: list[bytes]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.keys
            or scope["type"] not in ("http", "websocket")
            or not str(scope.get("path", "")).startswith("/api/")
            or scope.get("path") in KEYLESS_PATHS
            or self._authorized(scope)
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            # Refused during the handshake: the client sees HTTP 403.
            await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
            return
        error = Unauthorized("A valid API key is required (Authorization: Bearer or X-API-Key).")
        response = from_exception(error)
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        given = presented_key(scope)
        if given is None:
            return False
        # Every key is compared, so timing does not tell which one nearly matched.
        matches = [hmac.compare_digest(given, key) for key in self.keys]
        return any(matches)


def presented_key(scope: Scope) -> bytes | None:
    authorization = _header(scope, b"authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip().encode("latin-1")
    api_key = _header(scope, b"x-api-key")
    if api_key:
        return api_key.strip().encode("latin-1")
    if scope["type"] == "websocket":
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        for name, value in parse_qsl(query):
            if name == "api_key" and value:
                return value.encode("utf-8")
    return None


class DrainGuard:
    """While the instance drains, new ``/api`` requests get 503 SERVICE_DRAINING and new sockets
    are closed with 1012 (service restart: reconnect elsewhere); the ones under way are held,
    so the drain waits for them."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not str(scope.get("path", "")).startswith(
            ("/api/", "/v1/")
        ):
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            if scope["type"] == "websocket":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": 1012, "reason": "draining"})
                return
            error = Draining(
                "This instance is shutting down; retry, another one will answer.",
                retry_after_s=1,
            )
            response = from_exception(error)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        with self.drain.hold():
            await self.app(scope, receive, send)
