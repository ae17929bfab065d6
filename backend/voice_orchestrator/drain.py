"""Graceful drain: on SIGTERM an instance stops taking new work, lets what runs finish, then
exits. ``/ready`` turns 503 at once (the load balancer stops sending), new REST turns get 503
SERVICE_DRAINING, each socket finishes its answer and closes with 1012 (its client resumes the
session on another instance from the shared store), and after at most ORCH_DRAIN_TIMEOUT_S the
server shuts down as usual.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)


class Drain:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.started = asyncio.Event()
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def draining(self) -> bool:
        return self.started.is_set()

    @property
    def busy(self) -> int:
        return self._busy

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Marks a request or socket as running: the drain waits for it."""
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    async def run(self) -> None:
        """Starts draining and waits until nothing runs, or the drain timeout passes."""
        self.started.set()
        logger.info("draining", extra={"busy": self._busy})
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._idle.wait()
        except TimeoutError:
            logger.warning("drain timeout passed", extra={"busy": self._busy})


class SigtermDrain:
    """Puts a drain in front of the server's own SIGTERM handling: the signal starts the
    drain, and the server's handler runs (shutting the server down) once it is over. Installed
    by the lifespan of a served app (main thread only) and removed at shutdown."""

    def __init__(self, drain: Drain) -> None:
        self._drain = drain
        self._previous: Any = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = asyncio.get_running_loop()
        self._previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start, signum, frame)

    def _start(self, signum: int, frame: FrameType | None) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain_then_exit(signum, frame))

    async def _drain_then_exit(self, signum: int, frame: FrameType | None) -> None:
        await self._drain.run()
        previous: Callable[[int, FrameType | None], Any] | None = (
            self._previous if callable(self._previous) else None
        )
        if previous is not None:
            previous(signum, frame)
        else:
            signal.raise_signal(signum)

    async def aclose(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
