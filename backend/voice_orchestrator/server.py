"""The service on the network: uvicorn's HTTP/1.1 protocols with two guards, and the one place
the server's options are set (``voice-orchestrator serve`` and the benchmarks serve through it).

- A connection must send the complete headers of a request within ``ORCH_HEADER_TIMEOUT_S``,
  counted from the connection for its first request and from the first byte of each later one;
  otherwise it is closed. Neither h11 nor httptools has such a deadline, so a client sending one
  header line and nothing more would hold its socket for ever.
- Open connections (HTTP and WebSocket alike) are capped per process at ``ORCH_MAX_CONNECTIONS``:
  a connection beyond the cap is answered 503 and closed at once, so a flood cannot exhaust the
  file descriptors. uvicorn's ``limit_concurrency`` answers only once the headers are complete,
  which a slow client never reaches.
- The request line and headers are bounded in size (httptools has no bound of its own).
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import sys
from typing import Any, Literal, cast

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from .settings import Settings

logger = logging.getLogger(__name__)

# A WebSocket message larger than this closes the socket with 1009 (the API itself refuses
# audio frames over 64 KiB with an ``error`` event and goes on).
WS_MAX_MESSAGE_BYTES = 1 << 20
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_HEADER_TIMEOUT_S = 10.0
# Whatever the file-descriptor limit, the cap leaves room for sockets to the providers,
# model files, the session store and log files.
MIN_MAX_CONNECTIONS = 16
STARTUP_FAILURE = 3
# The refusal is logged at most this often: a flood would otherwise flood the log too.
REFUSAL_LOG_INTERVAL_S = 10.0


def _overloaded_response() -> bytes:
    error = {
        "code": "SERVICE_UNAVAILABLE",
        "message": "Too many open connections; retry later.",
        "stage": "admission",
        "request_id": None,
        "retry_after_s": 1.0,
    }
    body = json.dumps({"error": error}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


OVERLOADED_RESPONSE = _overloaded_response()


def default_max_connections() -> int:
    """Half of this process's soft limit on open files (512 under the usual 1024)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 16
    return max(MIN_MAX_CONNECTIONS, soft // 2)


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration plus the guards' limits. Worker processes receive it pickled,
    which is why the limits live here rather than in the protocol classes."""

    def __init__(
        self, app: Any, *, header_timeout_s: float, max_connections: int, **options: Any
    ) -> None:
        super().__init__(app, **options)
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self.last_refusal_log = float("-inf")


class _Guard:
    """One connection's guards: admission under the cap and the deadline for headers."""

    def __init__(self, config: uvicorn.Config, loop: asyncio.AbstractEventLoop) -> None:
        self._config = config if isinstance(config, ServerConfig) else None
        self._loop = loop
        self.refused = False
        self.header_bytes = 0
        self._timer: asyncio.TimerHandle | None = None

    def admit(self, transport: asyncio.Transport, open_connections: int) -> bool:
        """False (after answering 503 and closing) when the process is at its cap."""
        config = self._config
        cap = config.max_connections if config else default_max_connections()
        if open_connections < cap:
            return True
        self.refused = True
        transport.write(OVERLOADED_RESPONSE)
        transport.close()
        now = self._loop.time()
        if config is None or now - config.last_refusal_log >= REFUSAL_LOG_INTERVAL_S:
            if config is not None:
                config.last_refusal_log = now
            logger.warning("connections refused at the cap", extra={"max_connections": cap})
        return False

    def arm(self, transport: asyncio.Transport) -> None:
        """Starts the deadline for the current request's headers, unless it runs already."""
        if self._timer is None:
            timeout_s = self._config.header_timeout_s if self._config else DEFAULT_HEADER_TIMEOUT_S
            self.header_bytes = 0
            self._timer = self._loop.call_later(timeout_s, self._expire, transport)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, transport: asyncio.Transport) -> None:
        self._timer = None
        if not transport.is_closing():
            logger.debug("connection closed: request headers incomplete in time")
            transport.close()


class _Guarded:
    """What both guarded protocols add to uvicorn's: the guard, made with the protocol, that
    refuses connections over the cap and closes those whose headers do not arrive in time.
    Listed before uvicorn's class, so that its methods wrap uvicorn's."""

    loop: asyncio.AbstractEventLoop
    connections: set[Any]

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)  # type: ignore[call-arg]
        self._guard = _Guard(config, self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = cast(asyncio.Transport, transport)  # a server socket's transport
        if self._guard.admit(tcp, len(self.connections)):
            super().connection_made(tcp)  # type: ignore[misc]
            self._guard.arm(tcp)

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.disarm()
        if not self._guard.refused:
            super().connection_lost(exc)  # type: ignore[misc]


class GuardedHttpToolsProtocol(_Guarded, HttpToolsProtocol):
    """uvicorn's httptools protocol with the header deadline, the header size bound and the
    connection cap."""

    def data_received(self, data: bytes) -> None:
        if not self._guard.refused:
            super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._guard.arm(self.transport)  # runs already for a connection's first request

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._guard.disarm()
        super().on_headers_complete()

    def _count_header_bytes(self, size: int) -> None:
        self._guard.header_bytes += size
        if self._guard.header_bytes > MAX_HEADER_BYTES:
            # Raised inside the parser's callback, this becomes uvicorn's 400 and a close.
            raise ValueError("request headers too large")


class GuardedH11Protocol(_Guarded, H11Protocol):
    """uvicorn's h11 protocol with the header deadline and the connection cap (h11 refuses
    incomplete headers over ``h11_max_incomplete_event_size`` itself)."""

    def data_received(self, data: bytes) -> None:
        if self._guard.refused:
            return
        if self.conn.their_state is h11.IDLE:  # these bytes begin (or continue) a request
            self._guard.arm(self.transport)
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._follow_request()

    def _follow_request(self) -> None:
        if self.conn.their_state is not h11.IDLE:
            self._guard.disarm()  # the headers are in
        elif self.conn.trailing_data[0]:
            self._guard.arm(self.transport)  # part of a pipelined request is waiting


HttpImplementation = Literal["httptools", "h11"]
PROTOCOLS: dict[HttpImplementation, type[asyncio.Protocol]] = {
    "httptools": GuardedHttpToolsProtocol,
    "h11": GuardedH11Protocol,
}


def server_config(
    app: Any,
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    factory: bool = False,
    http: HttpImplementation = "httptools",
) -> ServerConfig:
    """The server's options: ``app`` is an ASGI app, or a ``module:function`` import string
    (required for ``workers`` > 1) with ``factory=True``."""
    return ServerConfig(
        app,
        header_timeout_s=settings.header_timeout_s,
        max_connections=settings.max_connections or default_max_connections(),
        host=host,
        port=port,
        workers=workers,
        factory=factory,
        http=PROTOCOLS[http],
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        # The WebSocket carries raw PCM, which deflate shrinks by under a fifth while tripling
        # the server's CPU per frame (``python -m bench.ws_deflate``).
        ws_per_message_deflate=False,
        # The app drains first (ORCH_DRAIN_TIMEOUT_S); what is left after it gets this long.
        timeout_graceful_shutdown=5,
        log_config=None,
    )


def run(config: ServerConfig) -> None:
    """Serves until a signal stops the server, as ``uvicorn.run`` would with ``config``."""
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        sys.exit(STARTUP_FAILURE)
