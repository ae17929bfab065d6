"""The real OpenAI-compatible adapters against respx routes (through pytest-httpx2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from voice_orchestrator.audio import Audio, encode_wav, wav_header
from voice_orchestrator.errors import ProviderError
from voice_orchestrator.providers.base import ChatMessage
from voice_orchestrator.providers.openai import (
    OpenAIChatModel,
    OpenAISpeechToText,
    OpenAITextToSpeech,
    create_client,
)
from voice_orchestrator.settings import LLMSettings, STTSettings, TTSSettings

from ..fakes import tone

BASE = "http://upstream.test/v1"
KEY = "sk-test-secret-123"
STAGE_PATHS = {"stt": "/audio/transcriptions", "llm": "/chat/completions", "tts": "/audio/speech"}


def sse(*deltas: str, done: bool = True) -> httpx.Response:
    lines = [
        "data: "
        + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                      "choices": [{"index": 0, "delta": {"content": d}, "finish_reason": None}]})
        for d in deltas
    ]  # fmt: skip
    if done:
        lines.append("data: [DONE]")
    body = "\n\n".join(lines) + "\n\n"
    return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


def stt(**kw: Any) -> OpenAISpeechToText:
    settings = STTSettings(provider="openai", base_url=BASE, api_key=KEY, **kw)
    return OpenAISpeechToText(create_client(settings), settings)


def llm(**kw: Any) -> OpenAIChatModel:
    settings = LLMSettings(provider="openai", base_url=BASE, api_key=KEY, **kw)
    return OpenAIChatModel(create_client(settings), settings)


def tts(**kw: Any) -> OpenAITextToSpeech:
    settings = TTSSettings(provider="openai", base_url=BASE, api_key=KEY, **kw)
    return OpenAITextToSpeech(create_client(settings), settings)


async def run_stage(stage: str, **kw: Any) -> object:
    if stage == "stt":
        return await stt(**kw).transcribe(tone(1.0, 16_000))
    if stage == "llm":
        return [d async for d in llm(**kw).stream([ChatMessage("user", "hi")])]
    return [a async for a in tts(**kw).synthesize("Hello.")]


OK: dict[str, Callable[[], httpx.Response]] = {
    "stt": lambda: httpx.Response(200, json={"text": "hello"}),
    "llm": lambda: sse("Hi", " there."),
    "tts": lambda: httpx.Response(
        200, content=encode_wav(tone(0.2, 24_000)), headers={"content-type": "audio/wav"}
    ),
}


async def test_canary_the_mock_sees_the_request(httpx2_mock: respx.Router) -> None:
    route = httpx2_mock.post(BASE + "/audio/transcriptions").mock(
        return_value=httpx.Response(200, json={"text": " What time is it? "})
    )
    transcript = await stt(model="whisper-large").transcribe(tone(1.0, 16_000), language="en")
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.content
    assert b'name="model"' in body
    assert b"whisper-large" in body
    assert b'name="language"' in body
    assert b"RIFF" in body  # the audio went up as a WAV file
    assert transcript.text == "What time is it?"


async def test_chat_streams_deltas_with_settings(httpx2_mock: respx.Router) -> None:
    route = httpx2_mock.post(BASE + "/chat/completions").mock(return_value=sse("Par", "is."))
    model = llm(model="small", max_tokens=42, temperature=0.5)
    deltas = [d async for d in model.stream([ChatMessage("system", "s"), ChatMessage("user", "u")])]
    assert deltas == ["Par", "is."]
    sent = json.loads(route.calls.last.request.content)
    assert sent["model"] == "small"
    assert sent["stream"] is True
    assert sent["max_tokens"] == 42
    assert sent["temperature"] == 0.5
    assert sent["messages"] == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
    ]


@pytest.mark.parametrize("rate", [16_000, 22_050, 24_000, 44_100])
async def test_speech_wav_is_read_at_its_real_rate(httpx2_mock: respx.Router, rate: int) -> None:
    audio = tone(0.3, rate)
    route = httpx2_mock.post(BASE + "/audio/speech").mock(
        return_value=httpx.Response(200, content=wav_header(rate) + audio.pcm)
    )
    chunks = [a async for a in tts(voice="nova").synthesize("Hello there.")]
    assert {chunk.sample_rate for chunk in chunks} == {rate}
    assert Audio.concatenate(chunks, rate) == audio
    sent = json.loads(route.calls.last.request.content)
    assert sent["voice"] == "nova"
    assert sent["input"] == "Hello there."
    assert sent["response_format"] == "wav"


async def test_speech_pcm_uses_the_configured_rate(httpx2_mock: respx.Router) -> None:
    audio = tone(0.3, 16_000)
    httpx2_mock.post(BASE + "/audio/speech").mock(
        return_value=httpx.Response(200, content=audio.pcm)
    )
    chunks = [a async for a in tts(response_format="pcm", pcm_sample_rate=16_000).synthesize("Hi")]
    assert Audio.concatenate(chunks, 16_000) == audio


@pytest.mark.parametrize("stage", ["stt", "llm", "tts"])
@pytest.mark.parametrize(
    ("status", "kind", "retried"),
    [
        (400, "SERVICE_ERROR", False),
        (401, "SERVICE_ERROR", False),
        (404, "SERVICE_ERROR", False),
        (408, "SERVICE_UNAVAILABLE", True),
        (429, "SERVICE_UNAVAILABLE", True),
        (500, "SERVICE_UNAVAILABLE", True),
        (503, "SERVICE_UNAVAILABLE", True),
    ],
)
async def test_status_table(
    httpx2_mock: respx.Router, stage: str, status: int, kind: str, retried: bool
) -> None:
    route = httpx2_mock.post(BASE + STAGE_PATHS[stage]).mock(
        return_value=httpx.Response(
            status, json={"error": {"message": "no"}}, headers={"retry-after-ms": "1"}
        )
    )
    with pytest.raises(ProviderError) as info:
        await run_stage(stage, max_retries=2)
    assert info.value.code == f"{stage.upper()}_{kind}"
    assert info.value.stage == stage
    assert route.call_count == (3 if retried else 1)
    assert KEY not in info.value.message


@pytest.mark.parametrize("stage", ["stt", "llm", "tts"])
async def test_retry_then_success_honours_retry_after(
    httpx2_mock: respx.Router, stage: str
) -> None:
    route = httpx2_mock.post(BASE + STAGE_PATHS[stage])
    route.side_effect = [
        httpx.Response(429, headers={"retry-after": "0"}),
        httpx.ConnectError("refused"),
        OK[stage](),
    ]
    result = await run_stage(stage, max_retries=2)
    assert result
    assert route.call_count == 3


async def test_retry_after_beyond_the_deadline_is_not_waited_for(
    httpx2_mock: respx.Router,
) -> None:
    route = httpx2_mock.post(BASE + "/audio/transcriptions").mock(
        return_value=httpx.Response(429, headers={"retry-after": "120"})
    )
    with pytest.raises(ProviderError) as info:
        await run_stage("stt", timeout_s=5)
    assert info.value.code == "STT_SERVICE_UNAVAILABLE"
    assert info.value.retry_after_s == 120
    assert route.call_count == 1


async def test_no_retries_when_disabled(httpx2_mock: respx.Router) -> None:
    route = httpx2_mock.post(BASE + "/chat/completions").mock(return_value=httpx.Response(500))
    with pytest.raises(ProviderError):
        await run_stage("llm", max_retries=0)
    assert route.call_count == 1


@pytest.mark.parametrize("stage", ["stt", "llm", "tts"])
async def test_timeout(httpx2_mock: respx.Router, stage: str) -> None:
    route = httpx2_mock.post(BASE + STAGE_PATHS[stage]).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ProviderError) as info:
        await run_stage(stage)
    assert info.value.code == f"{stage.upper()}_TIMEOUT"
    assert route.call_count == 1


@pytest.mark.parametrize("stage", ["stt", "llm", "tts"])
async def test_unreachable(httpx2_mock: respx.Router, stage: str) -> None:
    route = httpx2_mock.post(BASE + STAGE_PATHS[stage]).mock(
        side_effect=httpx.ConnectError("refused")
    )
    with pytest.raises(ProviderError) as info:
        await run_stage(stage, max_retries=1)
    assert info.value.code == f"{stage.upper()}_SERVICE_UNAVAILABLE"
    assert route.call_count == 2


@pytest.mark.parametrize(
    ("stage", "response"),
    [
        ("stt", httpx.Response(200, text="<html>oops</html>",
                               headers={"content-type": "text/html"})),
        ("stt", httpx.Response(200, json={"unexpected": 1})),
        ("llm", httpx.Response(200, text="data: {not json\n\n",
                               headers={"content-type": "text/event-stream"})),
        ("llm", httpx.Response(200, text='data: {"choices": 5}\n\n',
                               headers={"content-type": "text/event-stream"})),
        ("tts", httpx.Response(200, content=b"definitely not audio")),
    ],
)  # fmt: skip
async def test_garbage_is_a_service_error(
    httpx2_mock: respx.Router, stage: str, response: httpx.Response
) -> None:
    route = httpx2_mock.post(BASE + STAGE_PATHS[stage]).mock(return_value=response)
    with pytest.raises(ProviderError) as info:
        await run_stage(stage)
    assert info.value.code == f"{stage.upper()}_SERVICE_ERROR"
    assert route.call_count == 1


async def test_stream_error_event_mid_reply(httpx2_mock: respx.Router) -> None:
    body = sse("Hello", done=False).text + 'data: {"error": {"message": "overloaded"}}\n\n'
    httpx2_mock.post(BASE + "/chat/completions").mock(
        return_value=httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    )
    got: list[str] = []
    with pytest.raises(ProviderError) as info:
        async for delta in llm().stream([ChatMessage("user", "hi")]):
            got.append(delta)
    assert got == ["Hello"]
    assert info.value.stage == "llm"


async def test_health(httpx2_mock: respx.Router) -> None:
    httpx2_mock.get(BASE + "/models/gpt-4o-mini").mock(
        return_value=httpx.Response(200, json={"id": "gpt-4o-mini", "object": "model",
                                               "created": 0, "owned_by": "x"})
    )  # fmt: skip
    httpx2_mock.get(BASE + "/models/whisper-1").mock(return_value=httpx.Response(500))
    httpx2_mock.get(BASE + "/models/gpt-4o-mini-tts").mock(return_value=httpx.Response(404))
    assert (await llm().health()).status == "healthy"
    broken = await stt().health()
    assert broken.status == "unhealthy"
    assert "500" in broken.detail
    missing = await tts().health()
    assert missing.status == "unhealthy"
    assert "not found" in missing.detail
