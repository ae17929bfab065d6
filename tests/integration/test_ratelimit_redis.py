"""ORCH_RATE_LIMIT shared through a real redis-server: two instances count into one window, and
an unreachable store lets requests through (fail open)."""

from __future__ import annotations

import uuid

from voice_orchestrator.pipeline.rate_limits import (
    RateLimiter,
    RedisRateLimitStore,
    build_rate_limiter,
    parse_rate,
)

from ..redis_server import free_port
from ..unit.test_ratelimit import client_of, make_app


async def test_two_instances_share_one_window(redis_url: str) -> None:
    first = build_rate_limiter("3/minute", redis_url)
    second = build_rate_limiter("3/minute", redis_url)
    assert first is not None
    assert second is not None
    assert isinstance(first.store, RedisRateLimitStore)
    caller = f"key:{uuid.uuid4().hex}"
    try:
        decisions = [await (first, second)[i % 2].check(caller) for i in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert [d.remaining for d in decisions] == [2, 1, 0, 0]
        assert all(1 <= d.reset_s <= 60 for d in decisions)
        assert (await second.check(f"key:{uuid.uuid4().hex}")).allowed
    finally:
        await first.aclose()
        await second.aclose()


async def test_two_apps_share_the_limit_of_a_key(redis_url: str) -> None:
    rate = parse_rate("2/minute")
    stores = [RedisRateLimitStore(redis_url), RedisRateLimitStore(redis_url)]
    apps = [make_app(RateLimiter(rate, store)) for store in stores]
    headers = {"X-API-Key": uuid.uuid4().hex}
    try:
        async with client_of(apps[0]) as one, client_of(apps[1]) as two:
            answers = [
                await one.get("/api/thing", headers=headers),
                await two.get("/api/thing", headers=headers),
                await one.get("/api/thing", headers=headers),
            ]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[2].json()["error"]["code"] == "RATE_LIMITED"
        assert int(answers[2].headers["Retry-After"]) <= 60
    finally:
        for store in stores:
            await store.aclose()


async def test_an_unreachable_store_lets_requests_through() -> None:
    store = RedisRateLimitStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=2.0)
    app = make_app(RateLimiter(parse_rate("1/minute"), store))
    try:
        async with client_of(app) as client:
            answers = [await client.get("/api/thing") for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert "RateLimit-Limit" not in answers[0].headers
    finally:
        await store.aclose()
