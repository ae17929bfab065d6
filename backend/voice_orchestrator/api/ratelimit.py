"""Pure ASGI middleware for ORCH_RATE_LIMIT on every ``/api`` route.

Each caller is its API key (as a SHA-256 digest: keys are never stored or logged), or its client
address when it presents none. Every answer carries ``RateLimit-Limit``, ``RateLimit-Remaining``
and ``RateLimit-Reset``; past the limit the answer is 429 ``RATE_LIMITED`` with ``Retry-After``
(a WebSocket handshake is refused the same way when the server supports denial responses, and
closed with 1008 otherwise).

When the shared store does not answer, requests pass without the headers (fail open): the rate
limit keeps callers fair, while the slots, which fail closed, keep the service within capacity.
"""

from __future__ import annotations

import hashlib
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import RateLimited
from ..pipeline.rate_limits import STORE_ERRORS, Decision, RateLimiter
from .errors import from_exception
from .middleware import presented_key

logger = logging.getLogger(__name__)


def caller_key(scope: Scope) -> str:
    """Who a request counts against: a digest of its API key, else of its client address."""
    presented = presented_key(scope)
    if presented is not None:
        return "key:" + hashlib.sha256(presented).hexdigest()[:32]
    client = scope.get("client")
    address = str(client[0]) if client else "unknown"
    return "addr:" + hashlib.sha256(address.encode()).hexdigest()[:32]


def rate_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    return [
        (b"ratelimit-limit", str(decision.limit).encode()),
        (b"ratelimit-remaining", str(decision.remaining).encode()),
        (b"ratelimit-reset", str(decision.reset_s).encode()),
    ]


class RateLimit:
    """Counts every ``/api`` request (and WebSocket handshake) against its caller's window."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not str(scope.get("path", "")).startswith(
            "/api/"
        ):
            await self.app(scope, receive, send)
            return
        try:
            decision = await self.limiter.check(caller_key(scope))
        except STORE_ERRORS:
            logger.warning("rate limit store unavailable; request let through")
            await self.app(scope, receive, send)
            return
        headers = rate_headers(decision)
        if not decision.allowed:
            await self._refuse(scope, receive, send, decision, headers)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        decision: Decision,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        logger.info("rate limited", extra={"limit": decision.limit, "reset_s": decision.reset_s})
        error = RateLimited(
            f"More than {decision.limit} requests in the window; retry in {decision.reset_s} s.",
            retry_after_s=decision.reset_s,
        )
        if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
            "extensions", {}
        ):
            await send({"type": "websocket.close", "code": 1008, "reason": "rate limited"})
            return
        response = from_exception(error)
        for name, value in headers:
            response.headers[name.decode()] = value.decode()
        await response(scope, receive, send)
