"""Every stage by every upstream fault, through the whole app with the real OpenAI adapters:
the contract's status and code, retries only where a retry can help, and no slot or task left
behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import httpx2
import pytest
import respx

from voice_orchestrator.audio import encode_wav, parse_wav
from voice_orchestrator.main import create_app

from ..conftest import make_settings, running
from ..fakes import make_wav, tone
from .test_openai_adapters import sse

BASE = "http://upstream.test/v1"
PATHS = {"stt": "/audio/transcriptions", "llm": "/chat/completions", "tts": "/audio/speech"}
TIMEOUT_S = 0.5


def ok(stage: str) -> httpx.Response:
    if stage == "stt":
        return httpx.Response(200, json={"text": "What is two plus two?"})
    if stage == "llm":
        return sse("Two plus two ", "is four.")
    wav = encode_wav(tone(0.3, 24_000))
    return httpx.Response(200, content=wav, headers={"content-type": "audio/wav"})


GARBAGE = {
    "stt": lambda: httpx.Response(200, text="<html>oops</html>",
                                  headers={"content-type": "text/html"}),
    "llm": lambda: httpx.Response(200, text="data: {not json\n\n",
                                  headers={"content-type": "text/event-stream"}),
    "tts": lambda: httpx.Response(200, content=b"definitely not audio",
                                  headers={"content-type": "audio/wav"}),
}  # fmt: skip


def streamed(stage: str, *, cut: bool = False, pause_s: float = 0.0) -> httpx.Response:
    """The stage's good answer sent in two halves: cut off after the first, or with a pause
    longer than the stage timeout between them."""
    good = ok(stage)
    body = good.content
    half = len(body) // 2

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:half]
        if cut:
            # What the real transport raises (respx passes the body's own errors through).
            raise httpx2.RemoteProtocolError("peer closed connection mid-body")
        await asyncio.sleep(pause_s)
        yield body[half:]

    headers = {"content-type": good.headers["content-type"]}
    return httpx.Response(200, content=chunks(), headers=headers)


def status(code: int, **headers: str) -> Callable[[str], httpx.Response]:
    return lambda _stage: httpx.Response(code, json={"error": {"message": "no"}}, headers=headers)


# fault -> (what the upstream does, HTTP status, code suffix, calls with max_retries=1)
FAULTS: dict[str, tuple[Callable[[str], Any], int, str, int]] = {
    "refused": (lambda _s: httpx.ConnectError("refused"), 503, "SERVICE_UNAVAILABLE", 2),
    "timeout": (lambda _s: httpx.ReadTimeout("slow"), 504, "TIMEOUT", 1),
    "429": (status(429, **{"retry-after": "0"}), 503, "SERVICE_UNAVAILABLE", 2),
    "500": (status(500), 503, "SERVICE_UNAVAILABLE", 2),
    "503": (status(503), 503, "SERVICE_UNAVAILABLE", 2),
    "400": (status(400), 502, "SERVICE_ERROR", 1),
    "401": (status(401), 502, "SERVICE_ERROR", 1),
    "garbage": (lambda s: GARBAGE[s](), 502, "SERVICE_ERROR", 1),
    "cut": (lambda s: streamed(s, cut=True), 503, "SERVICE_UNAVAILABLE", 2),
    "slow": (lambda s: streamed(s, pause_s=TIMEOUT_S * 4), 504, "TIMEOUT", 1),
}


def settings(**extra: Any) -> Any:
    stage = {"provider": "openai", "base_url": BASE, "api_key": "sk-matrix",
             "max_retries": 1, "timeout_s": TIMEOUT_S}  # fmt: skip
    return make_settings(stt=stage, llm=stage, tts=stage, **extra)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("failing", ["stt", "llm", "tts"])
async def test_fault(httpx2_mock: respx.Router, failing: str, fault: str) -> None:
    make, expected_status, suffix, expected_calls = FAULTS[fault]
    if (failing, fault) == ("llm", "cut"):
        expected_calls = 1  # cut after its first token: a retry would repeat what was said
    if (failing, fault) == ("tts", "cut"):
        # Cut after audio had been read: the sentence ends with what arrived, not retried.
        expected_status, expected_calls = 200, 1
    routes = {}
    order = list(PATHS)
    # The stages after the failing one get no route: a call to one would fail the test.
    for stage in order[: order.index(failing) + 1]:
        route = httpx2_mock.post(BASE + PATHS[stage])
        if stage == failing:
            route.side_effect = lambda _request, stage=stage: _raise_or_return(make(stage))
        else:
            route.side_effect = lambda _request, stage=stage: ok(stage)
        routes[stage] = route
    app = create_app(settings())
    async with running(app) as client:
        before = asyncio.all_tasks()
        response = await client.post(
            "/api/orchestrator/dialogue",
            content=make_wav(1.0),
            headers={"content-type": "audio/wav"},
        )
        await asyncio.sleep(0)  # let finished tasks be collected
        left = {t for t in asyncio.all_tasks() - before if not t.done()}
        assert app.state.services.slots.active == 0
    assert response.status_code == expected_status, response.text
    assert routes[failing].call_count == expected_calls
    assert not left, left
    if expected_status == 200:
        # The answer is the audio of the half that arrived (its 44-byte header aside).
        half = len(ok("tts").content) // 2
        assert parse_wav(response.content).frames == (half - 44) // 2
        return
    error = response.json()["error"]
    assert error["code"] == f"{failing.upper()}_{suffix}"
    assert error["stage"] == failing
    assert "sk-matrix" not in response.text
    assert "upstream.test" not in response.text


def _raise_or_return(outcome: Any) -> httpx.Response:
    if isinstance(outcome, Exception):
        raise outcome
    assert isinstance(outcome, httpx.Response)
    return outcome
