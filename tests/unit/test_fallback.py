"""Fallback providers and their circuit breaker over scripted fakes, on an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from voice_orchestrator.audio import Audio
from voice_orchestrator.errors import ProviderFailed, ProviderUnavailable
from voice_orchestrator.metrics import Metrics
from voice_orchestrator.providers.base import ChatMessage, ProviderHealth
from voice_orchestrator.providers.factory import _Clients, _with_fallback, fallback_stage
from voice_orchestrator.providers.fallback import (
    Breaker,
    FallbackChatModel,
    FallbackSpeechToText,
    FallbackTextToSpeech,
)
from voice_orchestrator.settings import LLMSettings

from ..conftest import make_settings
from ..fakes import FakeLLM, FakeSTT, FakeTTS, tone

MESSAGES = [ChatMessage("user", "hello")]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def down(stage: str = "llm") -> ProviderUnavailable:
    return ProviderUnavailable(stage, "upstream down", retryable=True)  # type: ignore[arg-type]


class Served:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, stage: str, role: str) -> None:
        self.calls.append((stage, role))


def chat(
    primary: FakeLLM, fallback: FakeLLM, clock: Clock | None = None, served: Served | None = None
) -> FallbackChatModel:
    breaker = Breaker(threshold=3, cooldown_s=30, clock=clock or Clock())
    return FallbackChatModel(primary, fallback, breaker, served)


async def reply(model: FallbackChatModel) -> str:
    return "".join([delta async for delta in model.stream(MESSAGES)])


async def test_the_primary_serves_while_it_works() -> None:
    served = Served()
    primary, fallback = FakeLLM(["a", "b"]), FakeLLM(["x"])
    assert await reply(chat(primary, fallback, served=served)) == "ab"
    assert (len(primary.calls), len(fallback.calls)) == (1, 0)
    assert served.calls == [("llm", "primary")]


async def test_a_retryable_failure_before_any_delta_goes_to_the_fallback() -> None:
    served = Served()
    primary = FakeLLM(["a"], error=down(), fail_after=0)
    fallback = FakeLLM(["from ", "fallback"])
    assert await reply(chat(primary, fallback, served=served)) == "from fallback"
    assert primary.stream_closed
    assert served.calls == [("llm", "fallback")]


async def test_a_failure_after_a_delta_is_the_callers() -> None:
    primary = FakeLLM(["a", "b"], error=down(), fail_after=1)
    fallback = FakeLLM(["x"])
    model = chat(primary, fallback)
    seen: list[str] = []
    with pytest.raises(ProviderUnavailable):
        async for delta in model.stream(MESSAGES):
            seen.append(delta)
    assert seen == ["a"]
    assert fallback.calls == []
    assert model.breaker.failures == 1


async def test_a_non_retryable_failure_is_not_retried_elsewhere() -> None:
    primary = FakeLLM(error=ProviderFailed("llm", "bad request"), fail_after=0)
    fallback = FakeLLM(["x"])
    model = chat(primary, fallback)
    with pytest.raises(ProviderFailed):
        await reply(model)
    assert fallback.calls == []
    assert model.breaker.failures == 0


async def test_the_breaker_skips_a_failing_primary_then_probes_it_after_the_cooldown() -> None:
    clock = Clock()
    served = Served()
    primary = FakeLLM(["p"], error=down(), fail_after=0)
    fallback = FakeLLM(["f"])
    model = chat(primary, fallback, clock, served)
    for _ in range(3):
        assert await reply(model) == "f"
    assert (len(primary.calls), model.breaker.state) == (3, "open")
    clock.now += 29.9
    assert await reply(model) == "f"
    assert len(primary.calls) == 3  # skipped while open
    clock.now += 0.1
    assert model.breaker.state == "half-open"
    assert await reply(model) == "f"  # the probe fails: open again for a full cooldown
    assert (len(primary.calls), model.breaker.state) == (4, "open")
    clock.now += 30
    primary.error = None
    assert await reply(model) == "p"  # the probe succeeds: closed
    assert (len(primary.calls), model.breaker.state) == (5, "closed")
    assert served.calls.count(("llm", "primary")) == 1
    assert served.calls.count(("llm", "fallback")) == 5


def test_one_probe_at_a_time_while_half_open() -> None:
    clock = Clock()
    breaker = Breaker(threshold=1, cooldown_s=10, clock=clock)
    breaker.failed()
    assert not breaker.allow()
    clock.now = 10
    assert breaker.allow()
    assert not breaker.allow()  # another call meanwhile goes to the fallback
    breaker.abandoned()  # the probe was cancelled: the next call probes
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed"


async def test_speech_to_text_falls_back_at_the_fallbacks_rate() -> None:
    served = Served()
    primary = FakeSTT(error=down("stt"))
    fallback = FakeSTT("from the fallback")
    fallback.sample_rate = 8_000
    stt = FallbackSpeechToText(primary, fallback, Breaker(clock=Clock()), served)
    transcript = await stt.transcribe(tone(0.5, 16_000), language="en")
    assert transcript.text == "from the fallback"
    assert fallback.calls[0].sample_rate == 8_000
    assert stt.sample_rate == 16_000
    assert served.calls == [("stt", "fallback")]


class OneChunkThenFail:
    """A synthesizer that yields one chunk, then fails."""

    name = "broken-tts"
    model = "m"
    sample_rate = 22_050

    async def synthesize(
        self,
        text: str,  # noqa: ARG002
        *,
        voice: str | None = None,  # noqa: ARG002
    ) -> AsyncIterator[Audio]:
        yield tone(0.1, self.sample_rate)
        raise down("tts")

    async def health(self) -> ProviderHealth:
        return ProviderHealth("healthy", 1.0)

    async def aclose(self) -> None:
        pass


async def test_speech_synthesis_falls_back_only_before_the_first_chunk() -> None:
    primary = FakeTTS(error=down("tts"))
    fallback = FakeTTS()
    tts = FallbackTextToSpeech(primary, fallback, Breaker(clock=Clock()))
    chunks = [chunk async for chunk in tts.synthesize("Hello there.", voice="alloy")]
    assert len(chunks) == 1
    assert fallback.calls == [("Hello there.", "alloy")]  # same provider: same voices

    late = FallbackTextToSpeech(OneChunkThenFail(), FakeTTS(), Breaker(clock=Clock()))
    received = []
    with pytest.raises(ProviderUnavailable):
        async for chunk in late.synthesize("Hello."):
            received.append(chunk)
    assert len(received) == 1
    assert late.fallback.calls == []  # type: ignore[attr-defined]


async def test_another_provider_gets_its_own_default_voice() -> None:
    fallback = FakeTTS()
    fallback.name = "other-tts"
    tts = FallbackTextToSpeech(FakeTTS(error=down("tts")), fallback, Breaker(clock=Clock()))
    assert [chunk async for chunk in tts.synthesize("Hi.", voice="alloy")]
    assert fallback.calls == [("Hi.", None)]


async def test_health_reports_both_and_a_serving_fallback_keeps_the_stage_healthy() -> None:
    clock = Clock()
    primary, fallback = FakeLLM(), FakeLLM()
    fallback.name = "backup"
    model = chat(primary, fallback, clock)
    assert model.name == "fake-llm (fallback backup)"
    assert model.model == "fake-model (fallback fake-model)"
    health = await model.health()
    assert (health.status, health.detail) == ("healthy", "primary serves; fallback healthy")

    primary.health_result = ProviderHealth("unhealthy", 5.0, "connection refused")
    health = await model.health()
    assert health.status == "healthy"
    assert health.detail == "fallback serves (primary unhealthy)"

    primary.health_result = ProviderHealth("healthy", 1.0)
    for _ in range(3):
        model.breaker.failed()
    assert (await model.health()).detail == "fallback serves (primary skipped after failures)"

    fallback.health_result = ProviderHealth("unhealthy", 1.0, "down too")
    health = await model.health()
    assert (health.status, health.detail) == (
        "unhealthy",
        "fallback serves (primary skipped after failures): down too",
    )
    await model.aclose()
    assert primary.closed
    assert fallback.closed


def test_the_metric_counts_calls_by_stage_and_role() -> None:
    metrics = Metrics()
    metrics.count_served("llm", "fallback")
    metrics.count_served("llm", "fallback")
    text = metrics.render().decode()
    assert 'orchestrator_provider_calls_total{role="fallback",stage="llm"} 2.0' in text


async def test_a_fallback_that_fails_to_load_closes_the_primary() -> None:
    settings = make_settings(
        llm={
            "provider": "openai",
            "base_url": "http://x.test/v1",
            "fallback": {"provider": "llama"},
        }
    )
    loaded = FakeLLM()

    async def build(stage: LLMSettings, *_: object) -> FakeLLM:
        if stage.provider == "llama":
            raise RuntimeError("no model file")
        return loaded

    with pytest.raises(RuntimeError, match="no model file"):
        await _with_fallback(settings.llm, build, FallbackChatModel, 30, _Clients(), None, None)
    assert loaded.closed


def test_the_fallback_stage_keeps_the_stage_options() -> None:
    settings = make_settings(
        llm={
            "provider": "openai",
            "base_url": "http://x.test/v1",
            "model": "main",
            "max_tokens": 77,
            "fallback": {"provider": "openai", "base_url": "http://y.test/v1"},
        },
        tts={"voice": "amy", "fallback": {"provider": "openai", "base_url": "http://y.test/v1"}},
    )
    llm = fallback_stage(settings.llm)
    assert llm is not None
    assert (llm.base_url, llm.model, llm.max_tokens) == ("http://y.test/v1", "main", 77)
    tts = fallback_stage(settings.tts)
    assert tts is not None
    assert (tts.provider, tts.model, tts.voice) == ("openai", None, None)
