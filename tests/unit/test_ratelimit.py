"""ORCH_RATE_LIMIT in one process: the rate's syntax, fixed windows on an injected clock, and
the middleware's answers and headers per API key and per client address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from starlette.types import Message

from voice_orchestrator.api import errors
from voice_orchestrator.api.middleware import ApiKeyAuth, RequestContext
from voice_orchestrator.api.ratelimit import RateLimit, caller_key
from voice_orchestrator.pipeline.rate_limits import (
    MemoryRateLimitStore,
    Rate,
    RateLimiter,
    build_rate_limiter,
    parse_rate,
)

from ..conftest import make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("60/minute", Rate(60, 60.0)),
        ("5/second", Rate(5, 1.0)),
        (" 100 / hours ", Rate(100, 3600.0)),
        ("1000/DAY", Rate(1000, 86400.0)),
    ],
)
def test_rates_parse(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["60", "0/minute", "ten/minute", "60/fortnight", "-1/second"])
def test_bad_rates_are_refused_by_the_settings(text: str) -> None:
    with pytest.raises(ValidationError, match="ORCH_RATE_LIMIT"):
        make_settings(rate_limit=text)


def test_no_limit_builds_no_limiter() -> None:
    assert build_rate_limiter("", "memory") is None
    limiter = build_rate_limiter("3/minute", "memory")
    assert limiter is not None
    assert isinstance(limiter.store, MemoryRateLimitStore)


async def test_a_window_counts_then_resets_after_its_period() -> None:
    clock = Clock()
    limiter = RateLimiter(Rate(2, 60.0), MemoryRateLimitStore(clock=clock))
    first = await limiter.check("a")
    assert (first.allowed, first.remaining, first.reset_s) == (True, 1, 60)
    clock.now += 20.5
    second = await limiter.check("a")
    assert (second.allowed, second.remaining, second.reset_s) == (True, 0, 40)
    third = await limiter.check("a")
    assert (third.allowed, third.remaining) == (False, 0)
    assert (await limiter.check("b")).allowed  # another caller has its own window
    clock.now += 40
    again = await limiter.check("a")
    assert (again.allowed, again.remaining, again.reset_s) == (True, 1, 60)


async def test_the_memory_store_stays_bounded() -> None:
    clock = Clock()
    store = MemoryRateLimitStore(max_keys=3, clock=clock)
    for i in range(10):
        await store.hit(f"k{i}", 60)
    assert len(store._windows) <= 3


def make_app(limiter: RateLimiter, keys: list[bytes] | None = None) -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/api/thing")
    async def thing() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(RateLimit, limiter=limiter)
    app.add_middleware(ApiKeyAuth, keys=keys or [])
    app.add_middleware(RequestContext)
    return app


@asynccontextmanager
async def client_of(app: FastAPI, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_headers_on_every_api_answer_and_429_past_the_limit() -> None:
    clock = Clock()
    app = make_app(RateLimiter(Rate(2, 60.0), MemoryRateLimitStore(clock=clock)))
    async with client_of(app) as client:
        answers = [await client.get("/api/thing") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert [a.headers["RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
        assert {a.headers["RateLimit-Limit"] for a in answers} == {"2"}
        assert {a.headers["RateLimit-Reset"] for a in answers} == {"60"}
        refused = answers[2]
        assert refused.headers["Retry-After"] == "60"
        assert refused.headers["X-Request-Id"]
        error = refused.json()["error"]
        assert (error["code"], error["stage"], error["retry_after_s"]) == (
            "RATE_LIMITED",
            "admission",
            60,
        )
        health = await client.get("/health")  # outside /api: neither counted nor limited
        assert health.status_code == 200
        assert "RateLimit-Limit" not in health.headers
        clock.now += 60
        assert (await client.get("/api/thing")).status_code == 200


async def test_each_key_has_its_own_window_and_keys_are_not_stored() -> None:
    store = MemoryRateLimitStore(clock=Clock())
    app = make_app(RateLimiter(Rate(1, 60.0), store), keys=[b"key-one", b"key-two"])
    async with client_of(app) as client:
        one = {"Authorization": "Bearer key-one"}
        two = {"X-API-Key": "key-two"}
        assert (await client.get("/api/thing", headers=one)).status_code == 200
        assert (await client.get("/api/thing", headers=one)).status_code == 429
        assert (await client.get("/api/thing", headers=two)).status_code == 200
        # A rejected key is answered by the auth layer and counts against nothing.
        assert (await client.get("/api/thing", headers={"X-API-Key": "nope"})).status_code == 401
    assert len(store._windows) == 2
    assert not any("key-" in key for key in store._windows)


async def test_without_keys_each_client_address_has_its_own_window() -> None:
    app = make_app(RateLimiter(Rate(1, 60.0), MemoryRateLimitStore(clock=Clock())))
    async with client_of(app, "10.1.1.1") as first, client_of(app, "10.2.2.2") as second:
        assert (await first.get("/api/thing")).status_code == 200
        assert (await first.get("/api/thing")).status_code == 429
        assert (await second.get("/api/thing")).status_code == 200


def ws_scope(extensions: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": "/api/v1/orchestrator/ws",
        "headers": [(b"x-api-key", b"k")],
        "client": ("127.0.0.1", 1),
        "extensions": extensions,
    }


@pytest.mark.parametrize(
    ("extensions", "first_type"),
    [({"websocket.http.response": {}}, "websocket.http.response.start"), ({}, "websocket.close")],
)
async def test_a_websocket_handshake_over_the_limit_is_refused(
    extensions: dict[str, Any], first_type: str
) -> None:
    limiter = RateLimiter(Rate(1, 60.0), MemoryRateLimitStore(clock=Clock()))
    reached: list[str] = []

    async def inner(scope: Any, *_: Any) -> None:
        reached.append(scope["path"])

    middleware = RateLimit(inner, limiter=limiter)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(ws_scope(extensions), receive, send)
    await middleware(ws_scope(extensions), receive, send)
    assert reached == ["/api/v1/orchestrator/ws"]
    assert sent[0]["type"] == first_type
    if first_type == "websocket.http.response.start":
        assert sent[0]["status"] == 429
        assert (b"ratelimit-limit", b"1") in sent[0]["headers"]
    else:
        assert sent[0]["code"] == 1008


def test_the_caller_key_is_a_digest() -> None:
    scope = {"type": "http", "headers": [(b"authorization", b"Bearer sk-secret")], "client": None}
    key = caller_key(scope)
    assert key.startswith("key:")
    assert "sk-secret" not in key
    assert caller_key({"type": "http", "headers": [], "client": ("1.2.3.4", 5)}).startswith("addr:")
