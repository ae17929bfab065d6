"""The pace of an answer's audio: frames go out at real time, at most the playback lead ahead
of the listener, so that a barge-in finds little audio queued at the far end; a paused answer
sends nothing, and the listener's clock pauses with it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .response import Response


class Pacer:
    """When the next frame may go: no earlier than the playback lead ahead of the listener,
    never while the answer is paused (the listener's playback pauses too)."""

    def __init__(self, response: Response, lead_s: float) -> None:
        self.response = response
        self._lead_s = lead_s
        self._loop = asyncio.get_running_loop()
        self._started: float | None = None  # loop time at which the listener's playback began
        self.sent_s = 0.0

    async def _unpaused(self) -> None:
        resumed = self.response.resumed
        if resumed.is_set():
            return
        paused = self._loop.time()
        await resumed.wait()
        if self._started is not None:
            self._started += self._loop.time() - paused

    async def wait(self) -> None:
        await self._unpaused()
        now = self._loop.time()
        # After a gap (synthesis slower than playback) the listener started over.
        if self._started is None or now - self._started > self.sent_s:
            self._started = now - self.sent_s
        ahead = self.sent_s - (now - self._started)
        if ahead > self._lead_s:
            await asyncio.sleep(ahead - self._lead_s)
            await self._unpaused()

    def sent(self, seconds: float) -> None:
        self.sent_s += seconds
        self.response.heard.sent(seconds * 1000)
