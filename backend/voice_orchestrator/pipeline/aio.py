"""Small asyncio helpers every part of the pipeline uses."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any


def ms_since(start: float) -> float:
    """Milliseconds since ``start``, a ``time.perf_counter()`` reading."""
    return (time.perf_counter() - start) * 1000


async def aclose(stream: AsyncIterator[Any]) -> None:
    """Closes an async iterator that may be a generator (which then runs its ``finally``)."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
