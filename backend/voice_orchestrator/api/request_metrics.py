"""Pure ASGI middleware that counts every HTTP request by route, status and error code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..metrics import Metrics
from ..observability import ResponseNote, response_note_var
from .errors import CLIENT_CLOSED_REQUEST

# nginx's code for a client that went away; such a response never reaches anyone.
# Requests for paths the app does not serve share one label, so scanners cannot blow up the
# number of series.
OTHER_ROUTE = "other"


class RequestMetrics:
    """Outermost middleware: it sees the statuses the inner middleware answers with (401, 413,
    the last-resort 500) and learns error codes from ``note_error_code``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._paths: frozenset[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        note = ResponseNote()
        token = response_note_var.set(note)
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except asyncio.CancelledError:
            status = CLIENT_CLOSED_REQUEST
            raise
        finally:
            response_note_var.reset(token)
            self.metrics.count_request(
                self._route(scope), scope["method"], status, note.error_code,
                time.perf_counter() - start,
            )  # fmt: skip

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        # Answered before routing (401, 413): the path, when it is one of the app's own.
        if self._paths is None:
            self._paths = frozenset(_paths(getattr(scope.get("app"), "routes", [])))
        requested = str(scope.get("path", ""))
        return requested if requested in self._paths else OTHER_ROUTE


def _paths(routes: Iterable[object]) -> Iterator[str]:
    """The path templates of ``routes``, through routers included into others."""
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            yield path
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            yield from _paths(getattr(included, "routes", []))
