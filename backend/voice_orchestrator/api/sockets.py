"""What every socket route shares: admission (the socket caps), the idle timeout, and the
receive loop's message shape. Transports hold protocol logic only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

from fastapi import WebSocket
from starlette.types import Message

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


async def receive(websocket: WebSocket, idle_timeout_s: float) -> Message:
    """The next ASGI message of the socket; IdleTimeout when the client sent nothing in time."""
    try:
        async with asyncio.timeout(idle_timeout_s):
            return await websocket.receive()
    except TimeoutError:
        raise IdleTimeout(
            f"Nothing was received for {idle_timeout_s:g} s; the session is closed."
        ) from None


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
