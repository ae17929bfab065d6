"""Dialogue slots shared by every instance through Redis.

A slot is a lease: a member of one sorted set, the holder's random id scored by the time (Redis
server time, so the instances' clocks do not matter) at which it expires. Taking a slot is one
Lua script (drop expired leases, count, add), so two instances never both take the last slot; a
task owned by the ``acquire`` block renews the lease every third of its length, and leaving the
block removes it. The slots of an instance that was killed come back when their leases expire.

A Redis outage fails closed: no turn starts without the store (503
``ADMISSION_STORE_UNAVAILABLE``, retryable), since no instance could know how many run.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from typing import Any, Self
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import AdmissionUnavailable
from .admission import overloaded

logger = logging.getLogger(__name__)

KEY = "voice-orchestrator:slots"
# Takes the slot when one is free, or renews it when already held by this holder; also how a
# holder whose lease ran out (Redis unreachable for a while) gets it back when there is room.
# KEYS[1] the set; ARGV: holder, limit, lease in ms. Returns 1 when held, 0 when full.
LEASE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * lease)
return 1
"""
# Leases not yet expired. KEYS[1] the set.
COUNT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""
# Polling for a free slot: from this interval, doubling up to the cap (with jitter); a slot
# freed in this process wakes its waiters at once.
POLL_FIRST_S = 0.02
POLL_MAX_S = 0.5


class RedisSlots:
    """At most ``limit`` turns at once across every instance sharing the Redis at ``url``."""

    store = "redis"

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        limit: int,
        queue_timeout_s: float,
        lease_s: float,
        timeout_s: float = 2.0,
        key: str = KEY,
    ) -> None:
        self.limit = limit
        self.active = 0
        self.waiting = 0
        self.store_ok = True
        self._redis = redis
        self._queue_timeout_s = queue_timeout_s
        self._lease_ms = max(1, int(lease_s * 1000))
        self._timeout_s = timeout_s
        self._key = key
        self._lease = redis.register_script(LEASE_SCRIPT)
        self._count = redis.register_script(COUNT_SCRIPT)
        self._freed = asyncio.Event()
        self._mean_hold_s = 1.0

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        limit: int,
        queue_timeout_s: float,
        lease_s: float,
        timeout_s: float = 2.0,
        key: str = KEY,
    ) -> Self:
        """Connects and pings; raises RuntimeError (naming host and port only, never the
        password a URL may carry) when no Redis answers."""
        client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
        slots = cls(
            client,
            limit=limit,
            queue_timeout_s=queue_timeout_s,
            lease_s=lease_s,
            timeout_s=timeout_s,
            key=key,
        )
        try:
            await slots._call(client.ping())
        except AdmissionUnavailable:
            await client.aclose()
            where = urlsplit(url)
            raise RuntimeError(
                f"ORCH_ADMISSION_STORE: no Redis answers at {where.hostname}:{where.port or 6379}"
            ) from None
        logger.info("admission store ready", extra={"store": "redis", "limit": limit})
        return slots

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[None]:
        """Holds a slot for the block; raises Overloaded when none is free in time and
        AdmissionUnavailable when Redis does not answer."""
        holder = uuid.uuid4().hex
        if not await self._try(holder):
            await self._wait(holder)
        self.active += 1
        loop = asyncio.get_running_loop()
        start = loop.time()
        renewal = asyncio.create_task(self._renew(holder), name="slot-lease-renewal")
        try:
            yield
        finally:
            renewal.cancel()
            with suppress(asyncio.CancelledError):
                await renewal
            self.active -= 1
            self._mean_hold_s = 0.9 * self._mean_hold_s + 0.1 * (loop.time() - start)
            await self._release(holder)

    async def held(self) -> int:
        """Slots held across every instance now."""
        return int(await self._call(self._count(keys=[self._key])))

    async def ping(self) -> bool:
        """Whether the store answers now (also updates ``store_ok``)."""
        try:
            await self._call(self._redis.ping())
        except AdmissionUnavailable:
            return False
        return True

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _try(self, holder: str) -> bool:
        # A reply lost to a timeout may leave a lease that nobody renews: it expires.
        args: list[str | int] = [holder, self.limit, self._lease_ms]
        return bool(await self._call(self._lease(keys=[self._key], args=args)))

    async def _wait(self, holder: str) -> None:
        if self._queue_timeout_s <= 0:
            raise overloaded(self.limit, self._mean_hold_s)
        self.waiting += 1
        interval = POLL_FIRST_S
        try:
            async with asyncio.timeout(self._queue_timeout_s):
                while True:
                    self._freed.clear()
                    with suppress(TimeoutError):
                        async with asyncio.timeout(random.uniform(interval / 2, interval)):
                            await self._freed.wait()
                    if await self._try(holder):
                        return
                    interval = min(POLL_MAX_S, interval * 2)
        except TimeoutError:
            raise overloaded(self.limit, self._mean_hold_s) from None
        finally:
            self.waiting -= 1

    async def _renew(self, holder: str) -> None:
        interval = self._lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                held = await self._try(holder)
            except AdmissionUnavailable:
                # The turn goes on; if Redis stays away longer than the lease, the slot may be
                # taken by another instance meanwhile, and is taken back when there is room.
                logger.warning("slot lease not renewed", extra={"store": "redis"})
                continue
            if not held:
                logger.warning("slot lease lost", extra={"store": "redis"})

    async def _release(self, holder: str) -> None:
        try:
            await self._call(self._redis.zrem(self._key, holder))
        except AdmissionUnavailable:
            logger.warning("slot not released; its lease will expire", extra={"store": "redis"})
        self._freed.set()

    async def _call(self, call: Awaitable[Any]) -> Any:
        """Every Redis call: bounded in time, and any failure becomes AdmissionUnavailable."""
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await call
        except (RedisError, OSError, TimeoutError) as e:
            self.store_ok = False
            raise AdmissionUnavailable(
                "The admission store is unreachable; retry shortly.", retry_after_s=1
            ) from e
        self.store_ok = True
        return result
