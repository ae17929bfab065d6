"""Pure ASGI middleware for what every HTTP response owes the browser: security headers, redirects
that never echo the ``Host`` header, and ``HEAD`` wherever ``GET`` works."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .page import CONTENT_SECURITY_POLICY, is_page


class SecurityHeaders:
    """``X-Content-Type-Options: nosniff`` on every response, the page's
    ``Content-Security-Policy`` on the page and its static files, and a relative ``Location``
    wherever a redirect would point at the host the client named (Starlette builds absolute
    redirect URLs from the ``Host`` header, which the client chooses)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = is_page(str(scope.get("path", "")))
        host = _host(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if page:
                    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
                location = headers.get("location")
                if location is not None and 300 <= message["status"] < 400:
                    headers["Location"] = _relative(location, host)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"host":
            return bytes(value).decode("latin-1").lower()
    return None


def _relative(location: str, host: str | None) -> str:
    """``location`` without scheme and host when it points at ``host`` (or has no host at
    all to compare with)."""
    parts = urlsplit(location)
    if parts.scheme not in ("http", "https") or (host is not None and parts.netloc.lower() != host):
        return location
    path = parts.path or "/"
    if path.startswith("//"):  # would read as another host
        path = "/" + path.lstrip("/")
    return urlunsplit(("", "", path, parts.query, parts.fragment))


class HeadAsGet:
    """Answers ``HEAD`` wherever ``GET`` is answered: the request is handled as ``GET`` and
    only the response's status and headers (``Content-Length`` included) go out. FastAPI
    routes declare ``GET`` alone, and the schema stays as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
