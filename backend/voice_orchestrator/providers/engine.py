"""A dedicated thread per embedded engine, and streaming out of it.

Each engine gets one worker thread for its whole life: concurrent turns queue on it, CPU work
never runs on the event loop, and engines that spawn per-thread worker pools (llama.cpp's OpenMP)
always see the same calling thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..pipeline.aio import ms_since
from .base import ProviderHealth

T = TypeVar("T")
_END = object()


class EngineThread:
    """Runs blocking calls of one engine, one at a time, off the event loop."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.busy = False

    async def run(self, call: Callable[[], T]) -> T:
        """Runs ``call`` on the engine thread and returns its result."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._timed(call))

    async def stream(
        self, produce: Callable[[Callable[[], bool]], Iterator[T]]
    ) -> AsyncIterator[T]:
        """Yields what ``produce(stopped)`` yields on the engine thread, as it comes.

        Closing the iterator (or cancelling its consumer) sets ``stopped``; the producer ends at
        its next item, so the engine is free again within one item's work.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[object, BaseException | None]] = asyncio.Queue()
        stop = threading.Event()

        def hand_over(item: object, error: BaseException | None = None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed while we worked
                loop.call_soon_threadsafe(queue.put_nowait, (item, error))

        def work() -> None:
            self.busy = True
            try:
                for item in produce(stop.is_set):
                    if stop.is_set():
                        break
                    hand_over(item)
            except Exception as e:
                hand_over(_END, e)
            else:
                hand_over(_END)
            finally:
                self.busy = False

        future = loop.run_in_executor(self._executor, work)
        try:
            while True:
                item, error = await queue.get()
                if item is _END:
                    if error is not None:
                        raise error
                    return
                yield item  # type: ignore[misc]
        finally:
            stop.set()
            # The worker ends on its own at the next item; nobody needs its (empty) result.
            future.add_done_callback(lambda f: f.exception())

    def _timed(self, call: Callable[[], T]) -> Callable[[], T]:
        def timed() -> T:
            self.busy = True
            try:
                return call()
            finally:
                self.busy = False

        return timed

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class OnEngineThread:
    """What every embedded engine has in common: its thread, a probe that says whether it is
    loaded or busy, and a close that stops the thread."""

    _thread: EngineThread

    async def health(self) -> ProviderHealth:
        start = time.perf_counter()
        detail = "busy" if self._thread.busy else "loaded"
        return ProviderHealth("healthy", ms_since(start), detail)

    async def aclose(self) -> None:
        self._thread.shutdown()
