"""Request rate limits per caller: fixed windows counted in this process or in Redis.

A caller's window opens with its first request and lasts the period of ORCH_RATE_LIMIT; each
request counts, and past the limit the caller waits for the window to end. With Redis the
count is one Lua script (increment, and start the window's expiry on the first hit), shared by
every instance.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

PERIODS_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)
KEY_PREFIX = "voice-orchestrator:rate:"
# KEYS[1] the caller's counter; ARGV[1] the window in ms. Returns {count, ms left}.
HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
"""


@dataclass(frozen=True, slots=True)
class Rate:
    limit: int
    period_s: float


def parse_rate(text: str) -> Rate:
    """``"60/minute"`` -> Rate(60, 60.0). Raises ValueError naming the accepted form."""
    match = RATE.match(text)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(
            "ORCH_RATE_LIMIT must look like '60/minute' (N/second, minute, hour or day)"
        )
    return Rate(int(match.group(1)), float(PERIODS_S[match.group(2).lower()]))


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request against its caller's window."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # whole seconds until the window ends (at least 1)


class RateLimitStore(Protocol):
    async def hit(self, key: str, period_s: float) -> tuple[int, float]:
        """Counts one request of ``key``: (requests in its window, seconds left in it).
        Raises RedisError or TimeoutError when a shared store does not answer."""
        ...

    async def aclose(self) -> None: ...


class MemoryRateLimitStore:
    """Per-process windows; at most ``max_keys`` callers are tracked (expired ones first)."""

    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._max_keys = max_keys
        self._clock = clock

    async def hit(self, key: str, period_s: float) -> tuple[int, float]:
        now = self._clock()
        ends, count = self._windows.get(key, (0.0, 0))
        if ends <= now:
            if len(self._windows) >= self._max_keys:
                self._evict(now)
            ends, count = now + period_s, 0
        count += 1
        self._windows[key] = (ends, count)
        return count, ends - now

    def _evict(self, now: float) -> None:
        expired = [key for key, (ends, _) in self._windows.items() if ends <= now]
        for key in expired:
            del self._windows[key]
        while len(self._windows) >= self._max_keys:  # all live: drop the oldest entries
            del self._windows[next(iter(self._windows))]

    async def aclose(self) -> None:
        self._windows.clear()


class RedisRateLimitStore:
    """Windows in Redis, shared by every instance; every call bounded by ``timeout_s``."""

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._script = self._redis.register_script(HIT_SCRIPT)
        self._timeout_s = timeout_s

    async def hit(self, key: str, period_s: float) -> tuple[int, float]:
        window_ms = max(1, int(period_s * 1000))
        async with asyncio.timeout(self._timeout_s):
            count, left_ms = await self._script(keys=[KEY_PREFIX + key], args=[window_ms])
        return int(count), int(left_ms) / 1000

    async def aclose(self) -> None:
        await self._redis.aclose()


class RateLimiter:
    """Decides each request of a caller against ``rate`` through ``store``."""

    def __init__(self, rate: Rate, store: RateLimitStore) -> None:
        self.rate = rate
        self.store = store

    async def check(self, key: str) -> Decision:
        """Counts the request; raises RedisError, OSError or TimeoutError when the store
        does not answer (the caller decides what that means)."""
        count, left_s = await self.store.hit(key, self.rate.period_s)
        limit = self.rate.limit
        return Decision(
            allowed=count <= limit,
            limit=limit,
            remaining=max(0, limit - count),
            reset_s=max(1, math.ceil(left_s)),
        )

    async def aclose(self) -> None:
        await self.store.aclose()


STORE_ERRORS = (RedisError, OSError, TimeoutError)


def build_rate_limiter(rate_limit: str, store: str) -> RateLimiter | None:
    """The limiter ORCH_RATE_LIMIT asks for, in the store ORCH_ADMISSION_STORE names; None
    without a limit. Nothing connects here: the Redis client connects on first use."""
    if not rate_limit:
        return None
    rate = parse_rate(rate_limit)
    if store == "memory":
        return RateLimiter(rate, MemoryRateLimitStore())
    return RateLimiter(rate, RedisRateLimitStore(store))
