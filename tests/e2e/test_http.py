"""Real HTTP against a real uvicorn: full turns, streaming, admission, disconnects."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable

import httpx
import soundfile as sf

from ..fakes import FakeLLM, FakeSTT, FakeTTS, Timeline, fake_providers, make_wav
from .conftest import ServerFactory

URL = "/api/orchestrator/dialogue"
WAV = {"content-type": "audio/wav"}


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Waits for a condition that another task will make true."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


async def test_turn_over_real_http(live_server: ServerFactory) -> None:
    async with live_server() as server, httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(URL, files={"audio": ("q.wav", make_wav(1.0), "audio/wav")})
    assert response.status_code == 200
    samples, rate = sf.read(io.BytesIO(response.content))
    assert rate == 22_050
    assert len(samples) > 0
    assert "x-processing-time-total" in response.headers
    assert response.headers["x-request-id"]


async def test_stream_sends_first_audio_before_the_reply_is_written(
    live_server: ServerFactory,
) -> None:
    timeline = Timeline()
    llm = FakeLLM(
        ["First sentence here. ", "Second one ", "follows. ", "Third ", "and last."],
        token_s=0.1,
        timeline=timeline,
    )
    providers = fake_providers(llm=llm, tts=FakeTTS(timeline=timeline))
    async with live_server(providers) as server, httpx.AsyncClient(base_url=server.url) as client:
        received: list[tuple[float, int]] = []
        async with client.stream(
            "POST", URL, params={"stream": "true"}, content=make_wav(1.0), headers=WAV
        ) as response:
            assert response.status_code == 200
            assert response.headers.get("transfer-encoding") == "chunked"
            async for chunk in response.aiter_raw():
                received.append((time.perf_counter() - timeline.start, len(chunk)))
    first_bytes_at = received[0][0]
    assert first_bytes_at < timeline.at("llm.end")
    assert first_bytes_at < timeline.at("tts.start.1")
    assert sum(size for _, size in received) > 44
    assert len(timeline.labels()) > 0


async def test_full_slots_give_429_with_retry_after(live_server: ServerFactory) -> None:
    llm = FakeLLM(["Slow answer."], first_token_s=0.5)
    async with (
        live_server(fake_providers(llm=llm), max_concurrency=1) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        first = asyncio.create_task(client.post(URL, content=make_wav(1.0), headers=WAV))
        await until(lambda: bool(llm.calls))
        second = await client.post(URL, content=make_wav(1.0), headers=WAV)
        assert (await first).status_code == 200
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1
    error = second.json()["error"]
    assert (error["code"], error["stage"]) == ("TOO_MANY_REQUESTS", "admission")
    assert error["retry_after_s"] >= 1


async def test_queue_timeout_lets_a_request_wait_for_a_slot(live_server: ServerFactory) -> None:
    llm = FakeLLM(["Quick."], first_token_s=0.2)
    async with (
        live_server(fake_providers(llm=llm), max_concurrency=1, queue_timeout_s=5) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        responses = await asyncio.gather(
            *(client.post(URL, content=make_wav(1.0), headers=WAV) for _ in range(3))
        )
    assert [r.status_code for r in responses] == [200, 200, 200]


async def test_disconnect_cancels_the_turn_and_frees_the_slot(live_server: ServerFactory) -> None:
    for stream in (False, True):
        llm = FakeLLM(["Hello. "] + ["word "] * 200, first_token_s=0.05, token_s=0.05)
        async with live_server(fake_providers(llm=llm), max_concurrency=1) as server:
            slots = server.app.state.services.slots
            client = httpx.AsyncClient(base_url=server.url)
            request = asyncio.create_task(
                client.post(URL, params={"stream": str(stream).lower()}, content=make_wav(1.0),
                            headers=WAV)
            )  # fmt: skip
            await until(lambda: llm.tokens_sent >= 3)  # noqa: B023
            assert slots.active == 1
            request.cancel()
            await client.aclose()
            await until(lambda: slots.active == 0, timeout_s=2)  # noqa: B023
            assert llm.stream_closed
            sent = llm.tokens_sent
            assert sent < 50
            # The slot is usable again at once.
            async with httpx.AsyncClient(base_url=server.url) as again:
                llm.tokens = ["Again."]
                response = await again.post(URL, content=make_wav(1.0), headers=WAV)
            assert response.status_code == 200


async def test_disconnect_before_first_audio_of_a_stream(live_server: ServerFactory) -> None:
    stt = FakeSTT(delay_s=30)
    async with live_server(fake_providers(stt=stt), max_concurrency=1) as server:
        slots = server.app.state.services.slots
        client = httpx.AsyncClient(base_url=server.url)
        request = asyncio.create_task(
            client.post(URL, params={"stream": "true"}, content=make_wav(1.0), headers=WAV)
        )
        await until(lambda: bool(stt.calls))
        request.cancel()
        await client.aclose()
        await until(lambda: slots.active == 0, timeout_s=2)
        assert stt.cancelled
