"""Retries of retryable provider failures: exponential backoff with full jitter, Retry-After
honoured, every wait bounded by the stage's deadline."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import ProviderError

logger = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 4.0

RetryHook = Callable[[str, str], None]


def backoff_s(attempt: int) -> float:
    """Full-jitter exponential backoff for retry number ``attempt`` (0-based)."""
    return random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt))


async def with_retries(
    attempt_once: Callable[[], Awaitable[T]],
    *,
    max_retries: int,
    deadline: float,
    on_retry: RetryHook | None = None,
) -> T:
    """Runs ``attempt_once`` until it succeeds, fails for good, or retries run out.

    ``attempt_once`` raises ProviderError; only ``retryable`` ones are tried again, and only
    when the wait (Retry-After when the upstream gave one) ends before ``deadline``
    (event-loop time).
    """
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        try:
            return await attempt_once()
        except ProviderError as e:
            if not e.retryable or attempt >= max_retries:
                raise
            delay = e.retry_after_s if e.retry_after_s is not None else backoff_s(attempt)
            if loop.time() + delay >= deadline:
                raise
            logger.warning(
                "retrying upstream call",
                extra={"stage": e.stage, "code": e.code, "attempt": attempt + 1, "delay_s": delay},
            )
            if on_retry is not None:
                on_retry(e.stage, e.code)
            await asyncio.sleep(delay)
            attempt += 1
