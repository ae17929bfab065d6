"""GET /api/orchestrator/status with the real OpenAI adapters probing respx routes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import respx

from voice_orchestrator.main import create_app
from voice_orchestrator.settings import Settings

from ..conftest import HANG_S, make_settings, running
from ..fakes import make_wav

STATUS = "/api/orchestrator/status"
BASES = {"stt": "http://stt.test/v1", "llm": "http://llm.test/v1", "tts": "http://tts.test/v1"}
MODELS = {"stt": "whisper-x", "llm": "chat-x", "tts": "voice-x"}
KEY = "sk-status-secret"


def openai_settings(**overrides: Any) -> Settings:
    stages = {
        stage: {"provider": "openai", "base_url": BASES[stage], "api_key": KEY,
                "model": MODELS[stage], "max_retries": 0}
        for stage in BASES
    }  # fmt: skip
    # Probes answered in-process are far below 1 s however loaded the machine; the slow one is
    # scripted well above it.
    return make_settings(**{**stages, "status_slow_ms": 1000, **overrides})


def model_route(router: respx.Router, stage: str) -> respx.Route:
    return router.get(f"{BASES[stage]}/models/{MODELS[stage]}")


def model_ok(stage: str) -> httpx.Response:
    return httpx.Response(
        200, json={"id": MODELS[stage], "object": "model", "created": 0, "owned_by": "test"}
    )


def all_up(router: respx.Router) -> dict[str, respx.Route]:
    return {stage: model_route(router, stage).mock(return_value=model_ok(stage)) for stage in BASES}


def after(
    wait: Callable[[], Awaitable[object]], stage: str, started: list[int] | None = None
) -> Any:
    """A side effect that answers once ``wait`` returns; ``started`` counts calls as they begin
    (respx records a call only when its response is ready)."""

    async def effect(_: httpx.Request) -> httpx.Response:
        if started is not None:
            started.append(1)
        await wait()
        return model_ok(stage)

    return effect


async def test_all_up_is_healthy(httpx2_mock: respx.Router) -> None:
    routes = all_up(httpx2_mock)
    async with running(create_app(openai_settings())) as client:
        response = await client.get(STATUS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "healthy"
    for stage in BASES:
        service = body["services"][stage]
        assert service["status"] == "healthy"
        assert service["provider"] == "openai"
        assert service["model"] == MODELS[stage]
        assert service["latency_ms"] >= 0
        assert routes[stage].call_count == 1
        assert routes[stage].calls.last.request.headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in response.text


async def test_slow_probe_is_degraded(httpx2_mock: respx.Router) -> None:
    all_up(httpx2_mock)
    # Latency is the point here: the probe must really take longer than ORCH_STATUS_SLOW_MS.
    model_route(httpx2_mock, "tts").mock(side_effect=after(lambda: asyncio.sleep(1.5), "tts"))
    async with running(create_app(openai_settings())) as client:
        response = await client.get(STATUS)
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    tts = response.json()["services"]["tts"]
    assert tts["status"] == "degraded"
    assert tts["latency_ms"] >= 1500
    assert response.json()["services"]["stt"]["status"] == "healthy"


@pytest.mark.parametrize(
    ("upstream", "detail"),
    [
        (httpx.Response(500), "The llm service answered 500."),
        (httpx.Response(401, json={"error": {"message": "bad key"}}), "refused the request (401)"),
        (httpx.Response(404, json={"error": {"message": "no such model"}}), "not found"),
    ],
)
async def test_failing_probe_is_unhealthy_with_503(
    httpx2_mock: respx.Router, upstream: httpx.Response, detail: str
) -> None:
    all_up(httpx2_mock)
    model_route(httpx2_mock, "llm").mock(return_value=upstream)
    async with running(create_app(openai_settings())) as client:
        response = await client.get(STATUS)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["services"]["llm"]["status"] == "unhealthy"
    assert detail in body["services"]["llm"]["detail"]
    assert body["services"]["stt"]["status"] == "healthy"
    assert KEY not in response.text
    assert "llm.test" not in response.text


async def test_unreachable_upstream_is_unhealthy(httpx2_mock: respx.Router) -> None:
    all_up(httpx2_mock)
    model_route(httpx2_mock, "stt").mock(side_effect=httpx.ConnectError("refused"))
    async with running(create_app(openai_settings())) as client:
        response = await client.get(STATUS)
    assert response.status_code == 503
    assert response.json()["services"]["stt"]["detail"] == "The stt service could not be reached."


async def test_hanging_probe_answers_within_the_status_timeout() -> None:
    # respx records a call only when it is answered, and this one never is.
    with respx.mock(using="httpcore2", assert_all_called=False) as router:
        all_up(router)
        never = asyncio.Event()
        model_route(router, "stt").mock(side_effect=after(never.wait, "stt"))
        async with running(create_app(openai_settings(status_timeout_s=2))) as client:
            async with asyncio.timeout(HANG_S):  # the probe never answers
                response = await client.get(STATUS)
    assert response.status_code == 503
    stt = response.json()["services"]["stt"]
    assert stt["status"] == "unhealthy"
    assert stt["detail"] == "no answer within 2 s"  # the status timeout, not the stage's 30 s
    assert response.json()["services"]["llm"]["status"] == "healthy"


@pytest.mark.parametrize(("cache_s", "probes"), [(HANG_S, 1), (0.0, 2)])
async def test_results_are_cached(httpx2_mock: respx.Router, cache_s: float, probes: int) -> None:
    routes = all_up(httpx2_mock)
    async with running(create_app(openai_settings(status_cache_s=cache_s))) as client:
        first = await client.get(STATUS)
        second = await client.get(STATUS)
    assert first.status_code == second.status_code == 200
    assert [route.call_count for route in routes.values()] == [probes] * 3
    same = first.json()["checked_at"] == second.json()["checked_at"]
    assert same is (probes == 1)


async def test_concurrent_callers_share_one_probe_per_provider(httpx2_mock: respx.Router) -> None:
    routes = all_up(httpx2_mock)
    gate = asyncio.Event()
    started: list[int] = []
    routes["llm"].mock(side_effect=after(gate.wait, "llm", started))
    async with running(create_app(openai_settings())) as client:
        calls = [asyncio.create_task(client.get(STATUS)) for _ in range(20)]
        async with asyncio.timeout(HANG_S):
            while not started:
                await asyncio.sleep(0)
        for _ in range(50):  # let every caller reach the shared probe while it is held
            await asyncio.sleep(0)
        assert not any(call.done() for call in calls)
        assert len(started) == 1
        gate.set()
        responses = await asyncio.gather(*calls)
    assert {response.status_code for response in responses} == {200}
    assert [route.call_count for route in routes.values()] == [1, 1, 1]
    assert len({response.json()["checked_at"] for response in responses}) == 1


async def test_failing_real_turns_degrade_the_stage(httpx2_mock: respx.Router) -> None:
    all_up(httpx2_mock)
    httpx2_mock.post(f"{BASES['stt']}/audio/transcriptions").mock(
        return_value=httpx.Response(200, json={"text": "Hello there?"})
    )
    chat = httpx2_mock.post(f"{BASES['llm']}/chat/completions").mock(
        return_value=httpx.Response(502)
    )
    async with running(create_app(openai_settings())) as client:
        before = await client.get(STATUS)
        for _ in range(3):
            turn = await client.post(
                "/api/orchestrator/dialogue",
                content=make_wav(1.0),
                headers={"content-type": "audio/wav"},
            )
            assert turn.status_code == 503
        # The probe result is still cached; the traffic verdict is not.
        after_turns = await client.get(STATUS)
    assert chat.call_count == 3
    assert before.json()["services"]["llm"]["status"] == "healthy"
    assert after_turns.status_code == 200
    llm = after_turns.json()["services"]["llm"]
    assert llm["status"] == "degraded"
    assert llm["detail"] == "3 of the last 3 calls failed"
    assert after_turns.json()["services"]["stt"]["status"] == "healthy"
    assert after_turns.json()["status"] == "degraded"
