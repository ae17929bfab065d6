"""The dialogue slots shared by every REST request and WebSocket turn of a process (or, with
ORCH_ADMISSION_STORE=redis://…, of every instance: ``redis_admission.RedisSlots``)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from ..errors import Overloaded
from ..settings import Settings


class Admission(Protocol):
    """What the routes, /status and the metrics use of the slots."""

    limit: int
    active: int  # held by this process
    waiting: int  # waiting in this process
    store: str  # "memory" or "redis"
    store_ok: bool  # whether the last call to the store succeeded

    def acquire(self) -> AbstractAsyncContextManager[None]:
        """Holds a slot for the block; raises Overloaded when none is free in time."""
        ...

    async def ping(self) -> bool:
        """Whether the store answers now (updates ``store_ok``); never raises."""
        ...

    async def aclose(self) -> None: ...


class Slots:
    """At most ``limit`` turns at once; a caller waits up to ``queue_timeout_s`` for a slot."""

    store = "memory"
    store_ok = True

    def __init__(self, limit: int, queue_timeout_s: float) -> None:
        self.limit = limit
        self._queue_timeout_s = queue_timeout_s
        self._semaphore = asyncio.Semaphore(limit)
        self.active = 0
        self.waiting = 0
        # A rolling estimate of how long a turn holds its slot, for Retry-After.
        self._mean_hold_s = 1.0

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[None]:
        """Holds a slot for the block; raises Overloaded when none is free in time."""
        if not self._semaphore.locked():
            await self._semaphore.acquire()  # free: returns at once
        else:
            if self._queue_timeout_s <= 0:
                raise self._overloaded()
            self.waiting += 1
            try:
                async with asyncio.timeout(self._queue_timeout_s):
                    await self._semaphore.acquire()
            except TimeoutError:
                raise self._overloaded() from None
            finally:
                self.waiting -= 1
        self.active += 1
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            yield
        finally:
            self.active -= 1
            self._semaphore.release()
            self._mean_hold_s = 0.9 * self._mean_hold_s + 0.1 * (loop.time() - start)

    def _overloaded(self) -> Overloaded:
        return overloaded(self.limit, self._mean_hold_s)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        """Nothing to release: the semaphore lives and dies with the process."""


def overloaded(limit: int, mean_hold_s: float) -> Overloaded:
    retry_after = max(1, math.ceil(mean_hold_s))
    return Overloaded(
        f"All {limit} dialogue slots are busy; retry in {retry_after} s.",
        retry_after_s=retry_after,
    )


async def open_admission(settings: Settings) -> Admission:
    """The slots ORCH_ADMISSION_STORE names; a Redis store is pinged so that a wrong URL stops
    the service at start-up rather than at its first turn."""
    if settings.admission_store == "memory":
        return Slots(settings.max_concurrency, settings.queue_timeout_s)
    from .redis_admission import RedisSlots

    return await RedisSlots.open(
        settings.admission_store,
        limit=settings.max_concurrency,
        queue_timeout_s=settings.queue_timeout_s,
        lease_s=settings.slot_lease_s,
    )
