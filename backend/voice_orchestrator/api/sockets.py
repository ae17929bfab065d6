"""What every socket route shares: admission (the socket caps), the idle timeout, and the
receive loop's message shape. Transports hold protocol logic only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

from fastapi import WebSocket
from starlette.types import Message
from starlette.websockets import WebSocketState

from ..drain import Drain
from ..errors import IdleTimeout, Overloaded
from .deps import Services
from .errors import CLOSE_SERVICE_RESTART


class ListenerGone(Exception):
    """The client closed the connection while something was being sent. The conversation
    core recognizes it by ``listener_gone`` and ends quietly."""

    listener_gone = True


@asynccontextmanager
async def socket_slot(services: Services, owner: str) -> AsyncIterator[None]:
    """Counts the socket against ORCH_MAX_SESSIONS and, with keys, against the owner's
    ORCH_MAX_SESSIONS_PER_KEY; raises Overloaded when either is full."""
    settings = services.settings
    if services.open_sockets >= settings.max_sessions:
        raise Overloaded(f"All {settings.max_sessions} real-time sessions are in use; retry later.")
    held = services.sockets_by_owner.get(owner, 0)
    if owner and held >= settings.sessions_per_key:
        raise Overloaded(
            f"This API key holds {held} real-time sessions, its limit; close one or retry later."
        )
    services.open_sockets += 1
    services.sockets_by_owner[owner] = held + 1
    try:
        yield
    finally:
        services.open_sockets -= 1
        left = services.sockets_by_owner[owner] - 1
        if left:
            services.sockets_by_owner[owner] = left
        else:
            del services.sockets_by_owner[owner]


class _IdleClock:
    """One timer per socket, rescheduled only when it fires: a message costs a clock read, not
    a timeout context (which, per 20-ms audio frame, was a tenth of a busy server's time). When
    the timer finds the socket idle while its task waits for a message, it cancels that wait."""

    def __init__(self, websocket: WebSocket, timeout_s: float) -> None:
        self._websocket = websocket
        self.timeout_s = timeout_s
        self._loop = asyncio.get_running_loop()
        self.last = self._loop.time()
        self.waiting: asyncio.Task[object] | None = None
        self.fired = False
        self._handle = self._loop.call_at(self.last + timeout_s, self._check)

    def now(self) -> float:
        return self._loop.time()

    def _check(self) -> None:
        if WebSocketState.DISCONNECTED in (
            self._websocket.client_state,
            self._websocket.application_state,
        ):
            return  # the socket is over: the clock stops with it
        deadline = self.last + self.timeout_s
        if self._loop.time() < deadline or self.waiting is None:
            self._handle = self._loop.call_at(max(deadline, self._loop.time() + 0.01), self._check)
            return
        self.fired = True
        self.waiting.cancel()

    def close(self) -> None:
        self._handle.cancel()


_IDLE = "voice_orchestrator.idle"


async def receive(websocket: WebSocket, idle_timeout_s: float) -> Message:
    """The next ASGI message of the socket; IdleTimeout when the client sent nothing in time."""
    clock: _IdleClock | None = websocket.scope.get(_IDLE)
    if clock is None:
        clock = websocket.scope[_IDLE] = _IdleClock(websocket, idle_timeout_s)
    task = asyncio.current_task()
    assert task is not None
    clock.waiting = task
    try:
        message = await websocket.receive()
    except asyncio.CancelledError:
        if not clock.fired:
            raise
        task.uncancel()
        clock.close()
        raise IdleTimeout(
            f"Nothing was received for {idle_timeout_s:g} s; the session is closed."
        ) from None
    finally:
        clock.waiting = None
    clock.last = clock.now()
    if message["type"] == "websocket.disconnect":
        clock.close()
    return message


@asynccontextmanager
async def closed_when_drained(
    websocket: WebSocket, drain: Drain, finished: Callable[[], Awaitable[None]]
) -> AsyncIterator[None]:
    """When the instance drains, the socket first finishes its answer (``finished``), then
    closes with 1012 so that its client reconnects elsewhere and resumes the session."""

    async def watch() -> None:
        await drain.started.wait()
        await finished()
        with suppress(Exception):  # the client may be gone already
            await websocket.close(CLOSE_SERVICE_RESTART)

    task = asyncio.create_task(watch())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait({task})
