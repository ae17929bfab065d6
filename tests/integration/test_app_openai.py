"""A whole REST turn through the app with all three stages on OpenAI-compatible upstreams."""

from __future__ import annotations

import io
import json
from urllib.parse import unquote

import httpx
import pytest
import respx
import soundfile as sf

from voice_orchestrator.audio import encode_wav
from voice_orchestrator.main import create_app
from voice_orchestrator.settings import Settings

from ..conftest import make_settings, running
from ..fakes import make_wav, tone
from .test_openai_adapters import sse

STT_BASE = "http://stt.test/v1"
LLM_BASE = "http://llm.test/v1"


def openai_settings(**kw: object) -> Settings:
    stages: dict[str, object] = {
        "stt": {"provider": "openai", "base_url": STT_BASE},
        "llm": {"provider": "openai", "base_url": LLM_BASE, "api_key": "sk-llm", "model": "m1"},
        "tts": {"provider": "openai", "voice": "nova"},
    }
    return make_settings(**{**stages, **kw})


async def test_turn_through_real_adapters(
    httpx2_mock: respx.Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The TTS stage falls back to OPENAI_API_KEY / OPENAI_BASE_URL.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://tts.test/v1")
    stt = httpx2_mock.post(STT_BASE + "/audio/transcriptions").mock(
        return_value=httpx.Response(200, json={"text": "What is two plus two?"})
    )
    llm = httpx2_mock.post(LLM_BASE + "/chat/completions").mock(
        return_value=sse("Two plus two ", "is four. ", "Easy.")
    )
    tts = httpx2_mock.post("http://tts.test/v1/audio/speech").mock(
        side_effect=lambda _: httpx.Response(
            200, content=encode_wav(tone(0.4, 24_000)), headers={"content-type": "audio/wav"}
        )
    )
    app = create_app(openai_settings())
    async with running(app) as client:
        response = await client.post(
            "/api/orchestrator/dialogue",
            files={"audio": ("q.wav", make_wav(1.0, 48_000, channels=2), "audio/wav")},
        )
    assert response.status_code == 200, response.text
    assert unquote(response.headers["x-response-text"]) == "Two plus two is four. Easy."
    samples, rate = sf.read(io.BytesIO(response.content))
    assert rate == 24_000
    assert len(samples) == pytest.approx(0.8 * 24_000, abs=2)
    assert stt.call_count == 1
    assert llm.call_count == 1
    assert tts.call_count == 2
    assert "authorization" in stt.calls.last.request.headers
    assert llm.calls.last.request.headers["authorization"] == "Bearer sk-llm"
    assert tts.calls.last.request.headers["authorization"] == "Bearer sk-fallback"
    spoken = [json.loads(call.request.content)["input"] for call in tts.calls]
    assert spoken == ["Two plus two is four.", "Easy."]
    assert json.loads(tts.calls.last.request.content)["voice"] == "nova"


async def test_upstream_failure_maps_to_contract_status(httpx2_mock: respx.Router) -> None:
    httpx2_mock.post(STT_BASE + "/audio/transcriptions").mock(
        return_value=httpx.Response(200, json={"text": "hello"})
    )
    httpx2_mock.post(LLM_BASE + "/chat/completions").mock(
        return_value=httpx.Response(503, headers={"retry-after": "7"})
    )
    app = create_app(openai_settings(openai_api_key="sk-x", llm={
        "provider": "openai", "base_url": LLM_BASE, "max_retries": 0}))  # fmt: skip
    async with running(app) as client:
        response = await client.post(
            "/api/orchestrator/dialogue",
            content=make_wav(1.0),
            headers={"content-type": "audio/wav"},
        )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "LLM_SERVICE_UNAVAILABLE"
    assert response.json()["error"]["retry_after_s"] == 7
    assert response.headers["retry-after"] == "7"


def test_openai_without_key_or_url_names_the_variable() -> None:
    with pytest.raises(ValueError, match="ORCH_LLM__API_KEY"):
        make_settings(llm={"provider": "openai"})
