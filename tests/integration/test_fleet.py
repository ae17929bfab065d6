"""Two app instances on real uvicorn servers sharing one real redis-server: one slot limit for
both, one rate-limit window per key for both, and /status showing the shared store."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from voice_orchestrator.main import create_app

from ..conftest import HANG_S, make_settings
from ..e2e.conftest import serve
from ..fakes import FakeLLM, fake_providers, make_wav
from ..redis_server import redis_server

DIALOGUE = "/api/orchestrator/dialogue"
WAV = {"content-type": "audio/wav"}


class GatedLLM(FakeLLM):
    """Holds its reply until ``gate`` is set; ``started`` is set when a turn reaches it."""

    def __init__(self) -> None:
        super().__init__(["Fine. "])
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def stream(self, messages):  # type: ignore[no-untyped-def]
        self.started.set()
        await self.gate.wait()
        async for token in super().stream(messages):
            yield token


async def test_two_instances_share_one_slot(redis_url: str) -> None:
    llm_a, llm_b = GatedLLM(), GatedLLM()
    settings = {"admission_store": redis_url, "max_concurrency": 1, "slot_lease_s": 5}
    app_a = create_app(make_settings(**settings), fake_providers(llm=llm_a))
    app_b = create_app(make_settings(**settings), fake_providers(llm=llm_b))
    body = make_wav(1.0)
    async with (
        serve(app_a) as a,
        serve(app_b) as b,
        httpx.AsyncClient(timeout=HANG_S) as client,
        asyncio.timeout(HANG_S),
    ):
        held = asyncio.create_task(client.post(a.url + DIALOGUE, content=body, headers=WAV))
        await llm_a.started.wait()
        refused = await client.post(b.url + DIALOGUE, content=body, headers=WAV)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "TOO_MANY_REQUESTS"
        status = (await client.get(b.url + "/api/orchestrator/status")).json()
        assert status["concurrency"] | {"active": None} == {
            "limit": 1,
            "active": None,
            "waiting": 0,
            "store": "redis",
            "store_ok": True,
        }
        llm_a.gate.set()
        assert (await held).status_code == 200
        llm_b.gate.set()
        assert (await client.post(b.url + DIALOGUE, content=body, headers=WAV)).status_code == 200


async def test_two_instances_share_a_keys_rate_limit(redis_url: str) -> None:
    # Keys of their own: the Redis windows outlive a test.
    mine, theirs = uuid.uuid4().hex, uuid.uuid4().hex
    settings = {"admission_store": redis_url, "rate_limit": "2/minute", "api_keys": [mine, theirs]}
    app_a = create_app(make_settings(**settings), fake_providers())
    app_b = create_app(make_settings(**settings), fake_providers())
    async with (
        serve(app_a) as a,
        serve(app_b) as b,
        httpx.AsyncClient(timeout=HANG_S) as client,
    ):
        answers = [
            await client.get(url + "/api/orchestrator/status", headers={"X-API-Key": mine})
            for url in (a.url, b.url, a.url)
        ]
        other = await client.get(b.url + "/api/orchestrator/status", headers={"X-API-Key": theirs})
    assert [r.status_code for r in answers[:2]] == [200, 200]
    assert answers[2].status_code == 429
    assert answers[2].json()["error"]["code"] == "RATE_LIMITED"
    assert [r.headers["RateLimit-Remaining"] for r in answers] == ["1", "0", "0"]
    assert other.status_code == 200


async def test_turns_fail_closed_when_the_admission_store_stops(tmp_path: Path) -> None:
    server = redis_server(tmp_path)
    url = server.__enter__()
    running = True
    try:
        app = create_app(make_settings(admission_store=url), fake_providers())
        async with serve(app) as live, httpx.AsyncClient(timeout=HANG_S) as client:
            body = make_wav(1.0)
            assert (await client.post(live.url + DIALOGUE, content=body, headers=WAV)).is_success
            server.__exit__(None, None, None)
            running = False
            refused = await client.post(live.url + DIALOGUE, content=body, headers=WAV)
            status = (await client.get(live.url + "/api/orchestrator/status")).json()
            health = await client.get(live.url + "/health")
    finally:
        if running:
            server.__exit__(None, None, None)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert (refused.json()["error"]["code"], refused.json()["error"]["stage"]) == (
        "ADMISSION_STORE_UNAVAILABLE",
        "admission",
    )
    assert (status["concurrency"]["store"], status["concurrency"]["store_ok"]) == ("redis", False)
    assert health.status_code == 200
