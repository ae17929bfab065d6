"""Slow and numerous connections: the header deadline, the connection cap and the header size
bound, against a real uvicorn served as ``voice-orchestrator serve`` serves it."""

from __future__ import annotations

import asyncio
import json
import resource
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from urllib.parse import unquote

import httpx
import pytest
from bench.upstream import clean_env, server_process
from websockets.asyncio.client import connect

from ..conftest import HANG_S
from ..fakes import FakeLLM, fake_providers, make_wav
from .conftest import raw_connection, read_until_closed, served

HALF_OPEN = b"GET / HTTP/1.1\r\nHost: x\r\n"
WS_PATH = "/api/v1/orchestrator/ws"


@contextmanager
def open_file_limit_raised() -> Iterator[int]:
    """This process's soft limit on open files raised to the hard one (a server process started
    meanwhile inherits it); yields the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Flood:
    """``size`` clients that each send one header line and nothing more, and reconnect when the
    server closes them, as a slow-loris attacker would, until ``stop`` is set."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.connected = 0
        self.opened = 0
        self.closed_by_server = 0
        self.answers: list[bytes] = []
        self.all_connected = asyncio.Event()
        self.stop = asyncio.Event()
        self._connecting = asyncio.Semaphore(200)

    async def client(self) -> None:
        first = True
        while True:
            async with self._connecting:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(HALF_OPEN)
                await writer.drain()
            self.opened += 1
            if first:
                first = False
                self.connected += 1
                if self.connected == self.size:
                    self.all_connected.set()
            answer = await read_until_closed(reader)  # the client itself never closes first
            self.closed_by_server += 1
            if answer:
                self.answers.append(answer)
            writer.close()
            if self.stop.is_set():
                return


async def test_thousands_of_half_open_connections_are_closed_and_the_service_answers() -> None:
    with open_file_limit_raised() as limit:
        await flood_the_served_process(min(2000, limit - 400))


async def flood_the_served_process(size: int) -> None:
    env = clean_env(
        ORCH_HEADER_TIMEOUT_S="1",
        ORCH_MAX_CONNECTIONS=str(size + 200),
        ORCH_LOG_LEVEL="ERROR",
    )
    with server_process(["bench.instant"], 1, env) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        flood = Flood("127.0.0.1", port, size)
        async with asyncio.timeout(HANG_S), asyncio.TaskGroup() as group:
            for _ in range(size):
                group.create_task(flood.client())
            await flood.all_connected.wait()
            async with httpx.AsyncClient(base_url=url, timeout=HANG_S) as client:
                health = await client.get("/health")
                turn = await client.post(
                    "/api/orchestrator/dialogue",
                    files={"audio": ("q.wav", make_wav(1.0), "audio/wav")},
                )
            flood.stop.set()
    assert health.status_code == 200
    assert turn.status_code == 200
    assert turn.headers["content-type"] == "audio/wav"
    assert unquote(turn.headers["x-transcript"]) == "What is the capital of France?"
    # Every half-open connection ended because the server closed it, without an answer.
    assert flood.opened >= size
    assert flood.closed_by_server == flood.opened
    assert flood.answers == []


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_a_connection_without_complete_headers_is_closed(http: str) -> None:
    async with (
        served(http=http, header_timeout_s=0.5) as server,
        raw_connection(server) as (reader, writer),
        asyncio.timeout(HANG_S),
    ):
        writer.write(HALF_OPEN)
        assert await read_until_closed(reader) == b""


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_the_deadline_applies_to_each_request_of_a_kept_alive_connection(http: str) -> None:
    async with served(http=http, header_timeout_s=0.5) as server:
        async with raw_connection(server) as (reader, writer), asyncio.timeout(HANG_S):
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(HALF_OPEN)  # the second request never completes its headers
            assert await read_until_closed(reader) == b""
        assert head.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_an_answer_may_take_longer_than_the_header_deadline(http: str) -> None:
    # The model takes longer than the deadline: once the headers are in, it no longer applies.
    providers = fake_providers(llm=FakeLLM(["Slow. "], first_token_s=1.5))
    async with (
        served(providers, http=http, header_timeout_s=0.5) as server,
        httpx.AsyncClient(base_url=server.url, timeout=HANG_S) as client,
    ):
        response = await client.post(
            "/api/orchestrator/dialogue", files={"audio": ("q.wav", make_wav(1.0), "audio/wav")}
        )
        assert response.status_code == 200


async def test_oversized_headers_are_refused() -> None:
    # httptools has no bound of its own (h11 refuses incomplete headers over 16 KiB).
    async with served(http="httptools") as server:
        async with raw_connection(server) as (reader, writer), asyncio.timeout(HANG_S):
            big = b"X-Big: " + b"a" * 100_000 + b"\r\n"
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
            answer = await read_until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_connections_beyond_the_cap_get_503_until_one_closes(http: str) -> None:
    async with served(http=http, max_connections=3, max_sessions=10) as server:
        async with AsyncExitStack() as sockets:
            for _ in range(3):  # open WebSockets count as connections
                await sockets.enter_async_context(connect(server.ws_url + WS_PATH))
            async with raw_connection(server) as (reader, _), asyncio.timeout(HANG_S):
                answer = await read_until_closed(reader)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ")
        assert b"retry-after: 1" in head.lower()
        assert json.loads(body)["error"]["code"] == "SERVICE_UNAVAILABLE"
        # The sockets are closed (the server closed their TCP connections): room again.
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/health")).status_code == 200
