"""The dialogue endpoint in-process, over scripted fakes."""

from __future__ import annotations

import base64
import io
import re
from urllib.parse import unquote

import httpx
import pytest
import soundfile as sf

from voice_orchestrator.errors import (
    ProviderFailed,
    ProviderTimeout,
    ProviderUnavailable,
)

from ..conftest import AppClient
from ..fakes import FakeLLM, FakeSTT, FakeTTS, fake_providers, make_wav

URL = "/api/orchestrator/dialogue"
WAV = {"content-type": "audio/wav"}
TIMING_HEADERS = (
    "x-processing-time-stt",
    "x-processing-time-llm",
    "x-processing-time-tts",
    "x-processing-time-total",
    "x-time-to-first-audio",
)


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, object] = body["error"]
    assert set(error) == {"code", "message", "stage", "request_id", "retry_after_s"}
    assert error["request_id"] == response.headers["x-request-id"]
    return error


async def test_multipart_turn_returns_wav_and_every_header(app_client: AppClient) -> None:
    async with app_client() as client:
        response = await client.post(
            URL, files={"audio": ("q.wav", make_wav(1.5, 44_100, channels=2), "audio/wav")}
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    samples, rate = sf.read(io.BytesIO(response.content), dtype="int16")
    info = sf.info(io.BytesIO(response.content))
    assert info.subtype == "PCM_16"
    assert info.channels == 1
    assert rate == 22_050
    assert len(samples) > 0
    headers = response.headers
    for name in TIMING_HEADERS:
        assert re.fullmatch(r"\d+\.\d", headers[name]), name
    total = float(headers["x-processing-time-total"])
    assert float(headers["x-time-to-first-audio"]) <= total
    assert re.fullmatch(
        r"stt;dur=[\d.]+, llm;dur=[\d.]+, tts;dur=[\d.]+, total;dur=[\d.]+",
        headers["server-timing"],
    )
    assert headers["x-input-duration"] == "1.500"
    assert headers["x-input-sample-rate"] == "44100"
    assert headers["x-input-channels"] == "2"
    assert headers["x-output-sample-rate"] == "22050"
    assert float(headers["x-output-duration"]) == pytest.approx(len(samples) / 22_050, abs=1e-3)
    assert unquote(headers["x-transcript"]) == "What is the capital of France?"
    assert unquote(headers["x-response-text"]) == "The capital of France is Paris. It is big."
    assert "x-session-id" not in headers
    uuid_re = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert re.fullmatch(uuid_re, headers["x-request-id"])


@pytest.mark.parametrize("media", ["audio/wav", "audio/x-wav", "audio/wave"])
async def test_raw_body_turn(app_client: AppClient, media: str) -> None:
    stt = FakeSTT()
    async with app_client(fake_providers(stt=stt)) as client:
        response = await client.post(
            URL, content=make_wav(1.0, 8_000), headers={"content-type": media}
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-input-sample-rate"] == "8000"
    # The STT gets the audio at the rate it asked for.
    assert stt.calls[0].sample_rate == 16_000
    assert stt.calls[0].duration_s == pytest.approx(1.0, abs=0.01)


async def test_json_response(app_client: AppClient) -> None:
    async with app_client() as client:
        response = await client.post(
            URL,
            files={"audio": ("q.wav", make_wav(1.0), "audio/wav")},
            data={"session_id": "abc_1"},
            headers={"accept": "application/json", "x-request-id": "client-id-42"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["transcript"] == "What is the capital of France?"
    assert body["response_text"] == "The capital of France is Paris. It is big."
    assert body["session_id"] == "abc_1"
    assert body["request_id"] == "client-id-42" == response.headers["x-request-id"]
    assert {"stt_ms", "llm_ms", "tts_ms", "first_audio_ms", "total_ms"} <= set(body["timings_ms"])
    assert body["input"] == {
        "duration_s": 1.0,
        "sample_rate": 16000,
        "channels": 1,
        "format": "WAV",
    }
    audio = base64.b64decode(body["audio"]["data_base64"])
    samples, rate = sf.read(io.BytesIO(audio))
    assert rate == body["audio"]["sample_rate"] == body["output"]["sample_rate"] == 22_050
    assert body["audio"]["format"] == "wav"
    assert body["audio"]["duration_s"] == pytest.approx(len(samples) / rate, abs=1e-3)


async def test_stream_sends_streaming_wav_without_timing_headers(app_client: AppClient) -> None:
    async with app_client() as client:
        response = await client.post(
            URL,
            params={"stream": "true", "session_id": "s1"},
            content=make_wav(1.0),
            headers={"content-type": "audio/wav"},
        )
    assert response.status_code == 200, response.text
    body = response.content
    assert body[:4] == b"RIFF"
    assert body[4:8] == b"\xff\xff\xff\xff"
    assert body[40:44] == b"\xff\xff\xff\xff"
    assert len(body) > 44
    for name in TIMING_HEADERS:
        assert name not in response.headers
    assert response.headers["x-session-id"] == "s1"
    assert unquote(response.headers["x-transcript"]) == "What is the capital of France?"


async def test_session_history_reaches_the_model(app_client: AppClient) -> None:
    llm = FakeLLM(["Paris."])
    async with app_client(fake_providers(llm=llm)) as client:
        for _ in range(2):
            response = await client.post(
                URL,
                files={"audio": ("q.wav", make_wav(1.0), "audio/wav")},
                data={"session_id": "conv-1"},
            )
            assert response.status_code == 200
            assert response.headers["x-session-id"] == "conv-1"
    first, second = llm.calls
    assert [m.role for m in first] == ["system", "user"]
    assert [m.role for m in second] == ["system", "user", "assistant", "user"]
    assert second[2].content == "Paris."


async def test_history_is_capped(app_client: AppClient) -> None:
    llm = FakeLLM(["Yes."])
    async with app_client(fake_providers(llm=llm), max_history_turns=2) as client:
        for _ in range(4):
            await client.post(
                URL, content=make_wav(1.0), headers={"content-type": "audio/wav"},
                params={"session_id": "capped"},
            )  # fmt: skip
    assert len(llm.calls[-1]) == 1 + 2 * 2 + 1


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"", {"content-type": "audio/wav"}, 400, "INVALID_AUDIO_FORMAT"),
        (b"RIFF....WAVEfmt garbage", {"content-type": "audio/wav"}, 400, "INVALID_AUDIO_FORMAT"),
        (make_wav(0.2), {"content-type": "audio/wav"}, 400, "AUDIO_TOO_SHORT"),
        (make_wav(3.0, 8000), {"content-type": "audio/wav"}, 400, "AUDIO_TOO_LONG"),
        (
            make_wav(1.0),
            {"content-type": "application/octet-stream"},
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (make_wav(1.0), {"content-type": "text/plain"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ],
)  # fmt: skip
async def test_validation_errors(
    app_client: AppClient, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    async with app_client(max_audio_s=2.0) as client:
        response = await client.post(URL, content=content, headers=headers)
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code
    assert error["stage"] == "validation"


async def test_missing_multipart_field(app_client: AppClient) -> None:
    async with app_client() as client:
        response = await client.post(URL, files={"file": ("q.wav", make_wav(1.0), "audio/wav")})
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_AUDIO_FORMAT"


@pytest.mark.parametrize(
    "params",
    [{"session_id": "bad id!"}, {"session_id": "x" * 129}, {"voice": "a/b"}, {"stream": "maybe"}],
)
async def test_bad_parameters(app_client: AppClient, params: dict[str, str]) -> None:
    async with app_client() as client:
        response = await client.post(
            URL, params=params, content=make_wav(1.0), headers={"content-type": "audio/wav"}
        )
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_REQUEST"


async def test_upload_over_the_cap_is_refused(app_client: AppClient) -> None:
    async with app_client(max_upload_bytes=50_000) as client:
        declared = await client.post(
            URL, content=make_wav(3.0), headers={"content-type": "audio/wav"}
        )

        async def chunks() -> object:
            for _ in range(100):
                yield b"\0" * 10_000

        chunked = await client.post(URL, content=chunks(), headers={"content-type": "audio/wav"})
    for response in (declared, chunked):
        assert response.status_code == 413
        assert error_of(response)["code"] == "PAYLOAD_TOO_LARGE"


async def test_no_speech(app_client: AppClient) -> None:
    async with app_client(fake_providers(stt=FakeSTT("  "))) as client:
        response = await client.post(
            URL, content=make_wav(1.0), headers={"content-type": "audio/wav"}
        )
    assert response.status_code == 422
    assert error_of(response)["code"] == "SPEECH_RECOGNITION_FAILED"


@pytest.mark.parametrize(
    ("providers", "status", "code", "stage"),
    [
        (lambda: fake_providers(stt=FakeSTT(error=ProviderFailed("stt", "x"))), 502,
         "STT_SERVICE_ERROR", "stt"),
        (lambda: fake_providers(llm=FakeLLM(error=ProviderUnavailable("llm", "x"))), 503,
         "LLM_SERVICE_UNAVAILABLE", "llm"),
        (lambda: fake_providers(tts=FakeTTS(error=ProviderTimeout("tts", "x"))), 504,
         "TTS_TIMEOUT", "tts"),
        (lambda: fake_providers(tts=FakeTTS(error=RuntimeError("boom /secret/path"))), 500,
         "INTERNAL_ERROR", "internal"),
        (lambda: fake_providers(llm=FakeLLM([])), 502, "LLM_SERVICE_ERROR", "llm"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("stream", [False, True])
async def test_provider_errors(
    app_client: AppClient, providers: object, status: int, code: str, stage: str, stream: bool
) -> None:
    async with app_client(providers()) as client:  # type: ignore[operator]
        response = await client.post(
            URL,
            params={"stream": str(stream).lower()},
            content=make_wav(1.0),
            headers={"content-type": "audio/wav"},
        )
    assert response.status_code == status
    error = error_of(response)
    assert (error["code"], error["stage"]) == (code, stage)
    assert "secret" not in response.text
    assert "Traceback" not in response.text


async def test_stage_timeout_from_settings(app_client: AppClient) -> None:
    slow = fake_providers(stt=FakeSTT(delay_s=5))
    async with app_client(slow, stt={"timeout_s": 0.05}) as client:
        response = await client.post(
            URL, content=make_wav(1.0), headers={"content-type": "audio/wav"}
        )
    assert response.status_code == 504
    assert error_of(response)["code"] == "STT_TIMEOUT"
    assert slow.stt.cancelled  # type: ignore[attr-defined]


async def test_invalid_client_request_id_is_replaced(app_client: AppClient) -> None:
    async with app_client() as client:
        response = await client.post(
            URL, content=b"", headers={"content-type": "audio/wav", "x-request-id": "bad id\t!"}
        )
    assert response.headers["x-request-id"] != "bad id\t!"
    assert error_of(response)["request_id"] == response.headers["x-request-id"]


async def test_long_text_headers_are_cut_and_encoded(app_client: AppClient) -> None:
    text = "ü" * 1500
    async with app_client(fake_providers(stt=FakeSTT(text))) as client:
        response = await client.post(
            URL, content=make_wav(1.0), headers={"content-type": "audio/wav"}
        )
    assert response.status_code == 200
    header = response.headers["x-transcript"]
    assert header.isascii()
    assert unquote(header) == "ü" * 1000


async def test_malformed_multipart(app_client: AppClient) -> None:
    async with app_client() as client:
        response = await client.post(
            URL,
            content=b'--x\r\nContent-Disposition: form-data; name="audio"\r\n\r\nabc',
            headers={"content-type": "multipart/form-data; boundary=zzz"},
        )
    assert response.status_code == 400
    assert error_of(response)["code"] in {"INVALID_REQUEST", "INVALID_AUDIO_FORMAT"}


async def test_unknown_route_and_method_keep_the_error_shape(app_client: AppClient) -> None:
    async with app_client() as client:
        missing = await client.get("/api/nothing")
        wrong = await client.get(URL)
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "NOT_FOUND"
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "METHOD_NOT_ALLOWED"
