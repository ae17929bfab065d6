"""Real HTTP against a real uvicorn: full turns, streaming, admission, disconnects."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable, Sequence

import httpx
import soundfile as sf

from voice_orchestrator.providers.base import ChatMessage

from ..conftest import HANG_S
from ..fakes import FakeLLM, FakeSTT, FakeTTS, fake_providers, make_wav
from .conftest import ServerFactory

URL = "/api/orchestrator/dialogue"
WAV = {"content-type": "audio/wav"}


async def until(condition: Callable[[], bool]) -> None:
    """Waits for a condition that another task will make true."""
    async with asyncio.timeout(HANG_S):
        while not condition():
            await asyncio.sleep(0.005)


class HeldLLM(FakeLLM):
    """Yields its first ``before`` tokens, then holds the rest until ``release`` is set: the
    test decides when the reply goes on, so nothing depends on how fast the machine is."""

    def __init__(self, tokens: Sequence[str], *, before: int) -> None:
        super().__init__(tokens)
        self.before = before
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = False

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        self.calls.append(list(messages))
        try:
            for i, token in enumerate(self.tokens):
                if i == self.before:
                    self.held.set()
                    await self.release.wait()
                self.tokens_sent += 1
                yield token
            self.finished = True
        finally:
            self.stream_closed = True


def http(server_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server_url, timeout=HANG_S)


async def test_turn_over_real_http(live_server: ServerFactory) -> None:
    async with live_server() as server, http(server.url) as client:
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
    """The first sentence's audio reaches the client while the model is still held after that
    sentence: the stream does not wait for the rest of the reply."""
    llm = HeldLLM(["First sentence here. ", "Second one ", "follows. ", "Third ", "and last."],
                  before=1)  # fmt: skip
    tts = FakeTTS()
    received = 0
    spoken_while_held: list[str] = []
    async with (
        live_server(fake_providers(llm=llm, tts=tts)) as server,
        http(server.url) as client,
        client.stream(
            "POST", URL, params={"stream": "true"}, content=make_wav(1.0), headers=WAV
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers.get("transfer-encoding") == "chunked"
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > 44 and not llm.release.is_set():  # audio past the WAV header
                spoken_while_held = [text for text, _ in tts.calls]
                llm.release.set()
    assert llm.finished
    assert spoken_while_held == ["First sentence here."]
    assert [text for text, _ in tts.calls] == [
        "First sentence here.", "Second one follows.", "Third and last."
    ]  # fmt: skip


async def test_full_slots_give_429_with_retry_after(live_server: ServerFactory) -> None:
    llm = HeldLLM(["Slow answer."], before=0)  # holds the only slot until released
    async with (
        live_server(fake_providers(llm=llm), max_concurrency=1) as server,
        http(server.url) as client,
    ):
        first = asyncio.create_task(client.post(URL, content=make_wav(1.0), headers=WAV))
        async with asyncio.timeout(HANG_S):
            await llm.held.wait()
        second = await client.post(URL, content=make_wav(1.0), headers=WAV)
        llm.release.set()
        assert (await first).status_code == 200
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1
    error = second.json()["error"]
    assert (error["code"], error["stage"]) == ("TOO_MANY_REQUESTS", "admission")
    assert error["retry_after_s"] >= 1


async def test_queue_timeout_lets_a_request_wait_for_a_slot(live_server: ServerFactory) -> None:
    llm = FakeLLM(["Quick."], first_token_s=0.2)
    async with (
        # The queue wait is the hang guard: a slow machine makes the queue longer, not a 429.
        live_server(fake_providers(llm=llm), max_concurrency=1, queue_timeout_s=HANG_S) as server,
        http(server.url) as client,
    ):
        responses = await asyncio.gather(
            *(client.post(URL, content=make_wav(1.0), headers=WAV) for _ in range(3))
        )
    assert [r.status_code for r in responses] == [200, 200, 200]


async def test_disconnect_cancels_the_turn_and_frees_the_slot(live_server: ServerFactory) -> None:
    """A client that goes away mid-reply cancels the turn: the model, held after three tokens
    and never released, has its stream closed and the slot is free for the next request."""
    for stream in (False, True):
        llm = HeldLLM(["Hello. ", "word ", "word ", "word "], before=3)
        async with live_server(fake_providers(llm=llm), max_concurrency=1) as server:
            slots = server.app.state.services.slots
            client = http(server.url)
            request = asyncio.create_task(
                client.post(URL, params={"stream": str(stream).lower()}, content=make_wav(1.0),
                            headers=WAV)
            )  # fmt: skip
            async with asyncio.timeout(HANG_S):
                await llm.held.wait()
            assert slots.active == 1
            request.cancel()
            await client.aclose()
            await until(lambda: slots.active == 0)  # noqa: B023
            assert llm.stream_closed
            assert not llm.finished
            assert llm.tokens_sent == 3
            # The slot is usable again at once.
            async with http(server.url) as again:
                llm.tokens = ["Again."]
                llm.before = 1
                response = await again.post(URL, content=make_wav(1.0), headers=WAV)
            assert response.status_code == 200


async def test_disconnect_before_first_audio_of_a_stream(live_server: ServerFactory) -> None:
    stt = FakeSTT(delay_s=30)
    async with live_server(fake_providers(stt=stt), max_concurrency=1) as server:
        slots = server.app.state.services.slots
        client = http(server.url)
        request = asyncio.create_task(
            client.post(URL, params={"stream": "true"}, content=make_wav(1.0), headers=WAV)
        )
        await until(lambda: bool(stt.calls))
        request.cancel()
        await client.aclose()
        await until(lambda: slots.active == 0)
        assert stt.cancelled
