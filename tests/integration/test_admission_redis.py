"""Cluster-wide slots against a real redis-server: two instances share one limit, the slots of
a killed instance come back after their lease, and a Redis outage fails closed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voice_orchestrator.api.errors import from_exception
from voice_orchestrator.errors import AdmissionUnavailable, Overloaded
from voice_orchestrator.pipeline.admission import Slots, open_admission
from voice_orchestrator.pipeline.redis_admission import RedisSlots

from ..conftest import HANG_S, REPO, make_settings
from ..redis_server import free_port, redis_server


def new_key() -> str:
    return f"test:slots:{uuid.uuid4().hex}"


async def open_slots(
    url: str, key: str, *, limit: int = 2, queue_timeout_s: float = 0.0, lease_s: float = 15.0
) -> RedisSlots:
    return await RedisSlots.open(
        url, limit=limit, queue_timeout_s=queue_timeout_s, lease_s=lease_s, key=key
    )


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[RedisSlots, RedisSlots]]:
    """Two instances' slots over one Redis, limit 2 in all."""
    key = new_key()
    first = await open_slots(redis_url, key, queue_timeout_s=60)
    second = await open_slots(redis_url, key, queue_timeout_s=60)
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_the_limit_counts_across_instances(redis_url: str) -> None:
    key = new_key()
    first = await open_slots(redis_url, key)
    second = await open_slots(redis_url, key)
    try:
        async with first.acquire(), second.acquire():
            assert (first.active, second.active) == (1, 1)
            assert await first.held() == 2
            for slots in (first, second):
                with pytest.raises(Overloaded) as error:
                    async with slots.acquire():
                        pass
                assert error.value.retry_after_s is not None
        assert await first.held() == 0
        async with second.acquire():  # freed slots are free for every instance
            assert await first.held() == 1
    finally:
        await first.aclose()
        await second.aclose()


async def test_concurrent_acquires_never_exceed_the_limit(
    pair: tuple[RedisSlots, RedisSlots],
) -> None:
    first, second = pair
    inside = 0
    most = 0
    seen_in_redis: list[int] = []

    async def turn(slots: RedisSlots) -> None:
        nonlocal inside, most
        async with slots.acquire():
            inside += 1
            most = max(most, inside)
            seen_in_redis.append(await slots.held())  # a round trip while holding
            inside -= 1

    async with asyncio.timeout(HANG_S):
        await asyncio.gather(*(turn(first if i % 2 else second) for i in range(12)))
    assert len(seen_in_redis) == 12
    assert most <= 2
    assert max(seen_in_redis) <= 2
    assert await first.held() == 0
    assert first.waiting == second.waiting == 0


async def test_a_waiter_gets_the_slot_another_instance_frees(
    pair: tuple[RedisSlots, RedisSlots],
) -> None:
    first, second = pair
    release = asyncio.Event()
    both_held = asyncio.Event()
    holders = 0

    async def hold() -> None:
        nonlocal holders
        async with first.acquire():
            holders += 1
            if holders == 2:
                both_held.set()
            await release.wait()

    async with asyncio.timeout(HANG_S), asyncio.TaskGroup() as group:
        group.create_task(hold())
        group.create_task(hold())
        await both_held.wait()
        waiter = group.create_task(_hold_once(second))
        while second.waiting == 0:  # the waiter is queued behind the full set
            await asyncio.sleep(0.01)
        assert not waiter.done()
        release.set()
        assert await waiter == 2  # both slots of the first instance were given back
    assert second.waiting == 0


async def _hold_once(slots: RedisSlots) -> int:
    async with slots.acquire():
        return slots.limit


async def test_a_held_lease_is_renewed_past_its_length(redis_url: str) -> None:
    key = new_key()
    first = await open_slots(redis_url, key, limit=1, lease_s=1.0)
    second = await open_slots(redis_url, key, limit=1, lease_s=1.0)
    try:
        async with first.acquire():
            (holder, expiry), *_ = await first._redis.zrange(key, 0, -1, withscores=True)
            # Until Redis's own clock is past the first lease's end, and then some.
            while _ms(await first._redis.time()) < expiry + 1000:
                await asyncio.sleep(0.1)
            assert await second.held() == 1
            with pytest.raises(Overloaded):
                async with second.acquire():
                    pass
            (same, later), *_ = await first._redis.zrange(key, 0, -1, withscores=True)
            assert (same, later > expiry) == (holder, True)
    finally:
        await first.aclose()
        await second.aclose()


def _ms(server_time: tuple[int, int]) -> float:
    seconds, micros = server_time
    return seconds * 1000 + micros / 1000


HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from voice_orchestrator.pipeline.redis_admission import RedisSlots

    async def main() -> None:
        slots = await RedisSlots.open(
            sys.argv[1], limit=1, queue_timeout_s=0, lease_s=1.0, key=sys.argv[2]
        )
        async with slots.acquire():
            print("held", flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_the_slot_of_a_killed_instance_comes_back_after_its_lease(
    redis_url: str, tmp_path: Path
) -> None:
    key = new_key()
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    env = {**os.environ, "PYTHONPATH": str(REPO / "backend")}
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(script), redis_url, key, stdout=asyncio.subprocess.PIPE, env=env
    )
    slots = await open_slots(redis_url, key, limit=1, queue_timeout_s=60, lease_s=1.0)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), HANG_S)
        assert line.strip() == b"held"
        assert await slots.held() == 1
        child.send_signal(signal.SIGKILL)  # no release, no more renewals
        assert await asyncio.wait_for(child.wait(), HANG_S) == -signal.SIGKILL
        async with asyncio.timeout(HANG_S), slots.acquire():
            assert await slots.held() == 1
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        await slots.aclose()


async def test_a_redis_outage_fails_closed(tmp_path: Path) -> None:
    server = redis_server(tmp_path)
    url = server.__enter__()
    running = True
    slots = await open_slots(url, new_key())
    try:
        async with slots.acquire():
            server.__exit__(None, None, None)  # Redis stops while a slot is held
            running = False
        # Leaving the block did not raise: the lease will expire on its own.
        with pytest.raises(AdmissionUnavailable) as error:
            async with slots.acquire():
                pass
        assert slots.store_ok is False
        assert await slots.ping() is False
    finally:
        await slots.aclose()
        if running:
            server.__exit__(None, None, None)
    assert (error.value.code, error.value.stage, error.value.retryable) == (
        "ADMISSION_STORE_UNAVAILABLE",
        "admission",
        True,
    )
    response = from_exception(error.value)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


async def test_open_admission_picks_the_store(redis_url: str) -> None:
    memory = await open_admission(make_settings(max_concurrency=3))
    assert isinstance(memory, Slots)
    assert (memory.store, memory.store_ok, memory.limit) == ("memory", True, 3)
    shared = await open_admission(make_settings(admission_store=redis_url, slot_lease_s=5))
    try:
        assert isinstance(shared, RedisSlots)
        assert (shared.store, shared.store_ok, shared.limit) == ("redis", True, 5)
    finally:
        await shared.aclose()


async def test_a_wrong_store_url_stops_start_up_without_showing_the_password() -> None:
    url = f"redis://:secret-password@127.0.0.1:{free_port()}/0"
    with pytest.raises(RuntimeError, match="ORCH_ADMISSION_STORE") as error:
        await open_admission(make_settings(admission_store=url))
    assert "secret-password" not in str(error.value)
