"""GET /api/orchestrator/status and /health over fake providers; the checker's rules in detail."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from voice_orchestrator.errors import ProviderUnavailable
from voice_orchestrator.health import HealthChecker, RecentOutcomes
from voice_orchestrator.providers.base import ProviderHealth

from ..conftest import HANG_S, AppClient
from ..fakes import FakeLLM, FakeSTT, FakeTTS, fake_providers, make_wav

STATUS = "/api/orchestrator/status"
DIALOGUE = "/api/orchestrator/dialogue"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class GatedProbe(FakeTTS):
    """A provider whose probe waits until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def health(self) -> ProviderHealth:
        self.health_calls += 1
        await self.gate.wait()
        return ProviderHealth("healthy", 2.0)


async def test_status_body_has_the_contract_shape(app_client: AppClient) -> None:
    async with app_client(max_concurrency=3) as client:
        response = await client.get(STATUS)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "status", "version", "uptime_s", "checked_at", "concurrency", "services"
    }  # fmt: skip
    assert body["status"] == "healthy"
    assert body["version"] == client.app.version
    assert body["uptime_s"] >= 0
    datetime.fromisoformat(body["checked_at"])
    assert body["concurrency"] == {
        "limit": 3,
        "active": 0,
        "waiting": 0,
        "store": "memory",
        "store_ok": True,
    }
    assert set(body["services"]) == {"stt", "llm", "tts"}
    assert body["services"]["stt"] == {
        "status": "healthy",
        "provider": "fake-stt",
        "model": "fake-model",
        "latency_ms": 1.0,
        "detail": "",
    }


async def test_one_unhealthy_stage_makes_the_service_unhealthy_with_503(
    app_client: AppClient,
) -> None:
    llm = FakeLLM()
    llm.health_result = ProviderHealth("unhealthy", 4.0, "The llm service answered 500.")
    async with app_client(fake_providers(llm=llm)) as client:
        response = await client.get(STATUS)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["services"]["llm"]["status"] == "unhealthy"
    assert body["services"]["llm"]["detail"] == "The llm service answered 500."
    assert body["services"]["stt"]["status"] == "healthy"


async def test_slow_probe_is_degraded_and_answers_200(app_client: AppClient) -> None:
    tts = FakeTTS()
    tts.health_result = ProviderHealth("healthy", 1500.0)
    async with app_client(fake_providers(tts=tts)) as client:
        response = await client.get(STATUS)
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["services"]["tts"]["status"] == "degraded"
    assert "slow" in response.json()["services"]["tts"]["detail"]


async def test_probe_that_hangs_is_unhealthy_within_the_timeout(app_client: AppClient) -> None:
    stt = GatedProbe()  # never opened
    async with app_client(fake_providers(stt=stt), status_timeout_s=0.05) as client:
        async with asyncio.timeout(HANG_S):  # the probe never answers: only a timeout ends it
            response = await client.get(STATUS)
    assert response.status_code == 503
    assert response.json()["services"]["stt"]["status"] == "unhealthy"
    assert "no answer within 0.05 s" in response.json()["services"]["stt"]["detail"]


async def test_probe_that_raises_is_unhealthy(app_client: AppClient) -> None:
    class Raising(FakeSTT):
        async def health(self) -> ProviderHealth:
            raise RuntimeError("secret internals")

    async with app_client(fake_providers(stt=Raising())) as client:
        response = await client.get(STATUS)
    assert response.status_code == 503
    assert response.json()["services"]["stt"]["detail"] == "probe failed"
    assert "secret" not in response.text


async def test_concurrency_shows_slots_in_use(app_client: AppClient) -> None:
    async with app_client(max_concurrency=2) as client:
        slots = client.app.state.services.slots
        async with slots.acquire():
            body = (await client.get(STATUS)).json()
    assert body["concurrency"] == {
        "limit": 2,
        "active": 1,
        "waiting": 0,
        "store": "memory",
        "store_ok": True,
    }


async def test_failing_real_calls_degrade_a_healthy_stage(app_client: AppClient) -> None:
    llm = FakeLLM(error=ProviderUnavailable("llm", "down", retryable=True))
    async with app_client(fake_providers(llm=llm)) as client:
        for _ in range(3):
            turn = await client.post(
                DIALOGUE, content=make_wav(1.0), headers={"content-type": "audio/wav"}
            )
            assert turn.status_code == 503
        response = await client.get(STATUS)
    assert response.status_code == 200
    services = response.json()["services"]
    assert services["llm"]["status"] == "degraded"
    assert services["llm"]["detail"] == "3 of the last 3 calls failed"
    assert services["stt"]["status"] == "healthy"  # it did its part in every turn
    assert services["tts"]["status"] == "healthy"  # never reached
    assert response.json()["status"] == "degraded"


async def test_turns_without_speech_do_not_count_against_stt(app_client: AppClient) -> None:
    async with app_client(fake_providers(stt=FakeSTT(text=" "))) as client:
        for _ in range(3):
            turn = await client.post(
                DIALOGUE, content=make_wav(1.0), headers={"content-type": "audio/wav"}
            )
            assert turn.status_code == 422
        response = await client.get(STATUS)
    assert response.json()["services"]["stt"]["status"] == "healthy"


async def test_health_is_liveness_only(app_client: AppClient) -> None:
    providers = fake_providers()
    async with app_client(providers, api_keys="k1") as client:
        response = await client.get("/health")
        refused = await client.get(STATUS)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert [p.health_calls for p in (providers.stt, providers.llm, providers.tts)] == [0, 0, 0]
    assert refused.status_code == 401


def test_recent_outcomes_need_a_majority_of_enough_recent_samples() -> None:
    clock = Clock()
    outcomes = RecentOutcomes(size=4, max_age_s=60, min_samples=3, clock=clock)
    outcomes.record("llm", False)
    outcomes.record("llm", False)
    assert not outcomes.mostly_failing("llm")  # too few samples
    outcomes.record("llm", True)
    assert outcomes.mostly_failing("llm")  # 2 of 3
    outcomes.record("llm", True)
    assert not outcomes.mostly_failing("llm")  # 2 of 4 is not most
    outcomes.record("llm", True)
    assert outcomes.failures("llm") == (1, 4)  # the window slides
    clock.now += 61
    assert outcomes.failures("llm") == (0, 0)  # and ages out
    assert outcomes.failures("stt") == (0, 0)


def _checker(providers: object, clock: Clock, cache_s: float = 5.0) -> HealthChecker:
    return HealthChecker(
        providers,
        RecentOutcomes(clock=clock),
        slow_ms=1000,
        timeout_s=1,
        cache_s=cache_s,
        clock=clock,
    )


async def test_results_are_cached_for_cache_s() -> None:
    clock = Clock()
    providers = fake_providers()
    checker = _checker(providers, clock)
    first = await checker.check()
    clock.now += 4.9
    second = await checker.check()
    assert second.checked_at == first.checked_at
    assert providers.stt.health_calls == 1
    clock.now += 0.1
    await checker.check()
    assert providers.stt.health_calls == 2


async def test_concurrent_callers_share_one_probe_and_survive_a_cancelled_caller() -> None:
    gated = GatedProbe()
    providers = fake_providers(tts=gated)
    checker = _checker(providers, Clock(), cache_s=0)
    callers = [asyncio.create_task(checker.check()) for _ in range(10)]
    await asyncio.sleep(0)  # every caller runs up to its wait for the shared round
    callers[0].cancel()
    await asyncio.sleep(0)
    gated.gate.set()
    reports = await asyncio.gather(*callers[1:])
    assert gated.health_calls == 1
    assert providers.stt.health_calls == 1
    assert {report.checked_at for report in reports} == {reports[0].checked_at}
    assert all(report.status == "healthy" for report in reports)
    assert callers[0].cancelled()
    # cache_s=0: the next caller probes again.
    await checker.check()
    assert gated.health_calls == 2


@pytest.mark.parametrize(
    ("statuses", "overall"),
    [
        (("healthy", "healthy", "healthy"), "healthy"),
        (("healthy", "degraded", "healthy"), "degraded"),
        (("degraded", "unhealthy", "healthy"), "unhealthy"),
    ],
)
async def test_overall_is_the_worst_stage(statuses: tuple[str, ...], overall: str) -> None:
    providers = fake_providers()
    for provider, status in zip(
        (providers.stt, providers.llm, providers.tts), statuses, strict=True
    ):
        provider.health_result = ProviderHealth(status, 1.0)
    report = await _checker(providers, Clock()).check()
    assert report.status == overall
    assert [s.status for s in report.services.values()] == list(statuses)
