"""GET /metrics scraped and parsed after real turns through the app over fakes."""

from __future__ import annotations

import asyncio

import httpx
import respx
from prometheus_client.parser import text_string_to_metric_families

from voice_orchestrator.audio import encode_wav
from voice_orchestrator.errors import ProviderTimeout, ProviderUnavailable
from voice_orchestrator.main import create_app
from voice_orchestrator.metrics import TURN_HISTOGRAMS

from ..conftest import HANG_S, AppClient, make_settings, running
from ..fakes import FakeLLM, FakeTTS, fake_providers, make_wav, tone
from ..integration.test_openai_adapters import sse

DIALOGUE = "/api/orchestrator/dialogue"
WAV = {"content-type": "audio/wav"}


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float | None:  # fmt: skip
    return samples.get((name, frozenset(labels.items())))


async def metrics(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return scrape(response.text)


async def test_turns_fill_the_stage_histograms_and_request_counter(app_client: AppClient) -> None:
    async with app_client() as client:
        for _ in range(2):
            turn = await client.post(DIALOGUE, content=make_wav(1.0), headers=WAV)
            assert turn.status_code == 200
        samples = await metrics(client)
    requests = "orchestrator_http_requests_total"
    ok = {"route": DIALOGUE, "method": "POST", "status": "200", "code": ""}
    assert value(samples, requests, **ok) == 2
    for name, _ in TURN_HISTOGRAMS.values():
        assert value(samples, f"orchestrator_{name}_count") == 2, name
        assert (value(samples, f"orchestrator_{name}_sum") or 0) > 0, name
    assert value(samples, "orchestrator_turns_total", status="ok", code="") == 2
    total_s = float(turn.headers["x-processing-time-total"]) / 1000
    assert (value(samples, "orchestrator_turn_seconds_sum") or 0) >= total_s


async def test_failures_are_counted_by_stage_kind_and_code(app_client: AppClient) -> None:
    llm = FakeLLM(error=ProviderUnavailable("llm", "down", retryable=True))
    async with app_client(fake_providers(llm=llm)) as client:
        failed = await client.post(DIALOGUE, content=make_wav(1.0), headers=WAV)
        assert failed.status_code == 503
        samples = await metrics(client)
    labels = {"route": DIALOGUE, "method": "POST", "status": "503"}
    assert value(samples, "orchestrator_http_requests_total", **labels,
                 code="LLM_SERVICE_UNAVAILABLE") == 1  # fmt: skip
    assert (
        value(samples, "orchestrator_upstream_failures_total", stage="llm",
              kind="service_unavailable") == 1
    )  # fmt: skip
    failed_turns = value(samples, "orchestrator_turns_total", status="failed",
                         code="LLM_SERVICE_UNAVAILABLE")  # fmt: skip
    assert failed_turns == 1
    assert value(samples, "orchestrator_turn_seconds_count") == 0  # only completed turns


async def test_timeouts_count_as_their_own_kind(app_client: AppClient) -> None:
    tts = FakeTTS(error=ProviderTimeout("tts", "slow"))
    async with app_client(fake_providers(tts=tts)) as client:
        assert (await client.post(DIALOGUE, content=make_wav(1.0), headers=WAV)).status_code == 504
        samples = await metrics(client)
    failures = value(samples, "orchestrator_upstream_failures_total", stage="tts", kind="timeout")
    assert failures == 1


async def test_requests_refused_before_routing_keep_their_route(app_client: AppClient) -> None:
    async with app_client(api_keys="k1") as client:
        assert (await client.post(DIALOGUE, content=b"x", headers=WAV)).status_code == 401
        assert (await client.get("/no/such/path?x=1")).status_code == 404
        assert (await client.get("/health")).status_code == 200
        samples = await metrics(client)
    requests = "orchestrator_http_requests_total"
    assert value(samples, requests, route=DIALOGUE, method="POST", status="401",
                 code="UNAUTHORIZED") == 1  # fmt: skip
    assert value(samples, requests, route="other", method="GET", status="404",
                 code="NOT_FOUND") == 1  # fmt: skip
    assert value(samples, requests, route="/health", method="GET", status="200", code="") == 1
    assert not any("/no/such" in labels for _, label_set in samples for labels in label_set)


async def test_slot_gauges_are_read_at_scrape_time(app_client: AppClient) -> None:
    async with app_client(max_concurrency=1, queue_timeout_s=HANG_S) as client:
        slots = client.app.state.services.slots
        before = await metrics(client)
        async with slots.acquire():
            waiter = asyncio.create_task(client.post(DIALOGUE, content=make_wav(1.0), headers=WAV))
            async with asyncio.timeout(HANG_S):
                while slots.waiting == 0:
                    await asyncio.sleep(0)
            during = await metrics(client)
        assert (await waiter).status_code == 200
        after = await metrics(client)
    assert value(before, "orchestrator_slots_limit") == 1
    assert value(before, "orchestrator_slots_active") == 0
    assert value(during, "orchestrator_slots_active") == 1
    assert value(during, "orchestrator_slots_waiting") == 1
    assert value(after, "orchestrator_slots_active") == 0
    assert value(after, "orchestrator_slots_waiting") == 0


async def test_upstream_retries_are_counted(httpx2_mock: respx.Router) -> None:
    stt = httpx2_mock.post("http://stt.test/v1/audio/transcriptions").mock(
        side_effect=[
            httpx.Response(503, headers={"retry-after": "0"}),
            httpx.Response(200, json={"text": "Hello?"}),
        ]
    )
    httpx2_mock.post("http://llm.test/v1/chat/completions").mock(return_value=sse("Hi there."))
    httpx2_mock.post("http://tts.test/v1/audio/speech").mock(
        return_value=httpx.Response(200, content=encode_wav(tone(0.3, 24_000)))
    )
    settings = make_settings(**{
        stage: {"provider": "openai", "base_url": f"http://{stage}.test/v1", "max_retries": 2}
        for stage in ("stt", "llm", "tts")
    })  # fmt: skip
    async with running(create_app(settings)) as client:
        turn = await client.post(DIALOGUE, content=make_wav(1.0), headers=WAV)
        samples = await metrics(client)
    assert turn.status_code == 200, turn.text
    assert stt.call_count == 2
    retries = "orchestrator_upstream_retries_total"
    assert value(samples, retries, stage="stt", code="STT_SERVICE_UNAVAILABLE") == 1
    assert value(samples, "orchestrator_upstream_failures_total", stage="stt",
                 kind="service_unavailable") is None  # fmt: skip


async def test_each_app_has_its_own_registry(app_client: AppClient) -> None:
    async with app_client() as first, app_client() as second:
        assert (await first.post(DIALOGUE, content=make_wav(1.0), headers=WAV)).status_code == 200
        one, other = await metrics(first), await metrics(second)
    assert value(one, "orchestrator_turns_total", status="ok", code="") == 1
    assert value(other, "orchestrator_turns_total", status="ok", code="") is None
