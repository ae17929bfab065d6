"""The dialogue slots shared by every REST request and WebSocket turn of a process."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..errors import Overloaded


class Slots:
    """At most ``limit`` turns at once; a caller waits up to ``queue_timeout_s`` for a slot."""

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
        retry_after = max(1, math.ceil(self._mean_hold_s))
        return Overloaded(
            f"All {self.limit} dialogue slots are busy; retry in {retry_after} s.",
            retry_after_s=retry_after,
        )
