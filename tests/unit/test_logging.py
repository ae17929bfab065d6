"""Log lines as an operator sees them: JSON, request ids, turn summaries, nothing secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from voice_orchestrator.errors import ProviderUnavailable
from voice_orchestrator.main import create_app
from voice_orchestrator.observability import configure_logging

from ..conftest import AppClient, make_settings
from ..e2e.conftest import serve
from ..fakes import FakeLLM, FakeSTT, fake_providers, make_wav

DIALOGUE = "/api/orchestrator/dialogue"
TRANSCRIPT = "My card number is secret-words here"
REPLY = ("Sure thing. ", "Your reply is private.")
API_KEY = "sk-very-secret-key"
CONFIGURED = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpx2", "openai")


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Where configure_logging writes during the test; the logging set-up is restored after."""
    saved = [
        (logger, logger.handlers[:], logger.level, logger.propagate)
        for logger in map(logging.getLogger, CONFIGURED)
    ]
    yield io.StringIO()
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def turn_summaries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in lines(stream) if line["message"] == "dialogue turn finished"]


def providers() -> Any:
    return fake_providers(stt=FakeSTT(TRANSCRIPT), llm=FakeLLM(REPLY))


async def test_turn_summary_is_json_with_request_id_and_no_secrets(
    app_client: AppClient, log_stream: io.StringIO
) -> None:
    configure_logging("json", "INFO", stream=log_stream)
    async with app_client(providers(), api_keys=API_KEY) as client:
        response = await client.post(
            DIALOGUE,
            content=make_wav(1.0),
            headers={"content-type": "audio/wav", "x-request-id": "req-42", "x-api-key": API_KEY},
        )
    assert response.status_code == 200
    [summary] = turn_summaries(log_stream)
    assert summary["level"] == "INFO"
    assert summary["request_id"] == "req-42"
    assert summary["status"] == "ok"
    assert "code" not in summary
    assert summary["input_s"] == 1.0
    assert summary["output_s"] > 0
    assert set(summary["timings_ms"]) >= {"stt_ms", "llm_ms", "tts_ms", "first_audio_ms"}
    text = log_stream.getvalue()
    for secret in (API_KEY, "secret-words", "private", "Sure thing"):
        assert secret not in text


async def test_failed_turn_logs_a_summary_with_its_code(
    app_client: AppClient, log_stream: io.StringIO
) -> None:
    configure_logging("json", "INFO", stream=log_stream)
    llm = FakeLLM(error=ProviderUnavailable("llm", "down", retryable=True))
    async with app_client(fake_providers(stt=FakeSTT(TRANSCRIPT), llm=llm)) as client:
        response = await client.post(
            DIALOGUE, content=make_wav(1.0), headers={"content-type": "audio/wav"}
        )
    assert response.status_code == 503
    [summary] = turn_summaries(log_stream)
    assert summary["level"] == "WARNING"
    assert summary["status"] == "failed"
    assert summary["code"] == "LLM_SERVICE_UNAVAILABLE"
    assert summary["request_id"] == response.headers["x-request-id"]
    assert "stt_ms" in summary["timings_ms"]
    assert "secret-words" not in log_stream.getvalue()


async def test_text_format_carries_the_same_fields(
    app_client: AppClient, log_stream: io.StringIO
) -> None:
    configure_logging("text", "INFO", stream=log_stream)
    async with app_client(providers()) as client:
        response = await client.post(
            DIALOGUE, content=make_wav(1.0), headers={"content-type": "audio/wav"}
        )
    [line] = [line for line in log_stream.getvalue().splitlines() if "dialogue turn" in line]
    assert f"request_id={response.headers['x-request-id']}" in line
    assert "status=ok" in line
    assert "secret-words" not in log_stream.getvalue()


async def test_uvicorn_access_log_is_json_with_the_request_id(log_stream: io.StringIO) -> None:
    configure_logging("json", "INFO", stream=log_stream)
    app = create_app(make_settings(), fake_providers())
    async with serve(app) as server, httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/health?probe=1", headers={"x-request-id": "req-live"})
    assert response.status_code == 200
    access = [line for line in lines(log_stream) if line["logger"] == "uvicorn.access"]
    [entry] = [line for line in access if line.get("request_id") == "req-live"]
    assert entry["level"] == "INFO"
    assert entry["method"] == "GET"
    assert entry["path"] == "/health?probe=1"
    assert entry["status_code"] == 200
    assert '"GET /health?probe=1 HTTP/1.1" 200' in entry["message"]
    started = [line for line in lines(log_stream) if line["logger"] == "uvicorn.error"]
    assert started
    assert all("color_message" not in line for line in started)


def test_keys_in_logged_query_strings_are_masked(log_stream: io.StringIO) -> None:
    configure_logging("json", "INFO", stream=log_stream)
    path = "/api/v1/orchestrator/ws?session=a&api_key=sk-leaked"
    logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', "10.0.0.1:5", path)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.1:5", "GET", path, "1.1", 403
    )
    text = log_stream.getvalue()
    assert "sk-leaked" not in text
    ws, access = lines(log_stream)
    assert ws["message"].endswith(
        '"WebSocket /api/v1/orchestrator/ws?session=a&api_key=***" [accepted]'
    )
    assert access["path"] == "/api/v1/orchestrator/ws?session=a&api_key=***"
    assert access["status_code"] == 403
