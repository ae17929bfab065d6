"""Per-stage fallbacks built from the settings, the real OpenAI adapters against two upstreams
(respx routes through pytest-httpx2): the primary failing retryably is served by the fallback,
and after three failures in a row it is skipped until the cooldown ends."""

from __future__ import annotations

import httpx
import pytest
import respx

from voice_orchestrator.audio import encode_wav
from voice_orchestrator.metrics import Metrics
from voice_orchestrator.providers.base import ChatMessage
from voice_orchestrator.providers.factory import build_providers, fallback_stage
from voice_orchestrator.providers.fallback import (
    FallbackChatModel,
    FallbackSpeechToText,
    FallbackTextToSpeech,
)
from voice_orchestrator.settings import Settings

from ..conftest import make_settings
from ..fakes import tone
from .test_openai_adapters import sse

PRIMARY = "http://primary.test/v1"
SECOND = "http://second.test/v1"


def settings_with_fallbacks() -> Settings:
    def stage(**extra: object) -> dict[str, object]:
        fallback = {"provider": "openai", "base_url": SECOND, "model": "backup-model"}
        return {
            "provider": "openai",
            "base_url": PRIMARY,
            "max_retries": 0,
            "fallback": fallback,
            **extra,
        }

    return make_settings(stt=stage(), llm=stage(), tts=stage(voice="nova"), breaker_cooldown_s=60)


def test_fallback_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_LLM__PROVIDER", "openai")
    monkeypatch.setenv("ORCH_LLM__BASE_URL", PRIMARY)
    monkeypatch.setenv("ORCH_LLM__FALLBACK__PROVIDER", "openai")
    monkeypatch.setenv("ORCH_LLM__FALLBACK__BASE_URL", SECOND)
    monkeypatch.setenv("ORCH_LLM__FALLBACK__API_KEY", "sk-second")
    monkeypatch.setenv("ORCH_LLM__FALLBACK__MODEL", "backup-model")
    monkeypatch.setenv("ORCH_LLM__MODEL", "main-model")
    settings = Settings(_env_file=None)
    fallback = settings.llm.fallback
    assert fallback is not None
    assert (fallback.provider, fallback.base_url, fallback.model) == (
        "openai",
        SECOND,
        "backup-model",
    )
    assert fallback.api_key is not None
    assert fallback.api_key.get_secret_value() == "sk-second"
    second = fallback_stage(settings.llm)
    assert second is not None
    assert (second.provider, second.base_url, second.model, second.fallback) == (
        "openai",
        SECOND,
        "backup-model",
        None,
    )
    assert second.max_tokens == settings.llm.max_tokens  # the stage's options carry over
    assert settings.stt.fallback is None


def test_a_fallback_must_fit_its_stage() -> None:
    with pytest.raises(ValueError, match="ORCH_STT__FALLBACK__PROVIDER must be whisper or openai"):
        make_settings(stt={"fallback": {"provider": "piper"}})
    with pytest.raises(ValueError, match="ORCH_TTS__FALLBACK__PROVIDER=openai needs"):
        make_settings(tts={"fallback": {"provider": "openai"}})


async def test_each_stage_is_served_by_its_fallback_when_the_primary_is_down(
    httpx2_mock: respx.Router,
) -> None:
    for path in ("/audio/transcriptions", "/chat/completions", "/audio/speech"):
        httpx2_mock.post(PRIMARY + path).mock(return_value=httpx.Response(503))
    stt_second = httpx2_mock.post(SECOND + "/audio/transcriptions").mock(
        return_value=httpx.Response(200, json={"text": "hello"})
    )
    llm_second = httpx2_mock.post(SECOND + "/chat/completions").mock(
        return_value=sse("Hi", " there.")
    )
    tts_second = httpx2_mock.post(SECOND + "/audio/speech").mock(
        side_effect=lambda _: httpx.Response(
            200, content=encode_wav(tone(0.2, 24_000)), headers={"content-type": "audio/wav"}
        )
    )
    metrics = Metrics()
    providers = await build_providers(settings_with_fallbacks(), on_serve=metrics.count_served)
    try:
        assert isinstance(providers.stt, FallbackSpeechToText)
        assert isinstance(providers.llm, FallbackChatModel)
        assert isinstance(providers.tts, FallbackTextToSpeech)
        assert (await providers.stt.transcribe(tone(1.0, 16_000))).text == "hello"
        deltas = [d async for d in providers.llm.stream([ChatMessage("user", "hi")])]
        assert "".join(deltas) == "Hi there."
        assert [a async for a in providers.tts.synthesize("Hello.", voice="nova")]
        assert (stt_second.call_count, llm_second.call_count, tts_second.call_count) == (1, 1, 1)
        assert llm_second.calls[0].request.content.count(b"backup-model") == 1
        text = metrics.render().decode()
        for stage in ("stt", "llm", "tts"):
            assert (
                f'orchestrator_provider_calls_total{{role="fallback",stage="{stage}"}} 1.0' in text
            )
    finally:
        await providers.aclose()


async def test_a_primary_that_keeps_failing_is_skipped(httpx2_mock: respx.Router) -> None:
    primary = httpx2_mock.post(PRIMARY + "/chat/completions").mock(return_value=httpx.Response(500))
    second = httpx2_mock.post(SECOND + "/chat/completions").mock(side_effect=lambda _: sse("Fine."))
    settings = make_settings(
        llm={
            "provider": "openai",
            "base_url": PRIMARY,
            "max_retries": 0,
            "fallback": {"provider": "openai", "base_url": SECOND},
        },
        stt={"provider": "openai", "base_url": PRIMARY},
        tts={"provider": "openai", "base_url": PRIMARY},
    )
    providers = await build_providers(settings)
    try:
        llm = providers.llm
        assert isinstance(llm, FallbackChatModel)
        for _ in range(5):
            assert [d async for d in llm.stream([ChatMessage("user", "hi")])] == ["Fine."]
        assert (primary.call_count, second.call_count) == (3, 5)
        assert llm.breaker.state == "open"
        assert llm.breaker.cooldown_s == 30  # ORCH_BREAKER_COOLDOWN_S's default
        model = {"id": "m", "object": "model", "created": 0, "owned_by": "test"}
        httpx2_mock.route(method="GET").mock(return_value=httpx.Response(200, json=model))
        health = await llm.health()
        assert health.status == "healthy"
        assert health.detail.startswith("fallback serves (primary skipped after failures)")
    finally:
        await providers.aclose()
