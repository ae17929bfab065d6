"""Who owns a session and how long a socket may hold a place: idle sockets are closed, one key
holds at most its share of the sockets, another key never resumes the owner's conversation,
and an absurd transcript is cut before it reaches the model."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from ..conftest import HANG_S
from ..e2e.conftest import ServerFactory, live_server
from ..fakes import FakeLLM, FakeSTT, fake_providers, make_wav
from ..ws_client import client, start

__all__ = ["live_server"]  # the fixture, used by name

ALICE = "key-alice"
MALLORY = "key-mallory"


async def test_an_idle_socket_gets_an_error_then_is_closed_with_1001(
    live_server: ServerFactory,
) -> None:
    # Long enough that the session starts well before it, however loaded the machine.
    async with live_server(ws_idle_timeout_s=2.0) as server, client(server.url) as c:
        await start(c)
        error = await c.until("error")
        assert error["code"] == "IDLE_TIMEOUT"
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(HANG_S):
                while True:
                    await c.ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001


async def test_one_key_holds_at_most_its_share_of_the_sockets(
    live_server: ServerFactory,
) -> None:
    keys = f"{ALICE},{MALLORY}"
    async with (
        live_server(api_keys=keys, max_sessions=4) as server,  # 2 sockets per key
        client(server.url, f"?api_key={ALICE}") as first,
        client(server.url, f"?api_key={ALICE}") as second,
    ):
        await start(first)
        await start(second)
        async with client(server.url, f"?api_key={ALICE}") as third:
            error = await third.until("error")
            assert error["code"] == "TOO_MANY_REQUESTS"
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(HANG_S):
                    await third.ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1013
        # Another key still gets in.
        async with client(server.url, f"?api_key={MALLORY}") as other:
            started = await start(other)
            assert started["type"] == "session.started"


async def test_another_key_never_resumes_the_owners_conversation(
    live_server: ServerFactory,
) -> None:
    llm = FakeLLM()
    async with live_server(fake_providers(llm=llm), api_keys=f"{ALICE},{MALLORY}") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=HANG_S) as http:
            turn = await http.post(
                "/api/orchestrator/dialogue",
                params={"session_id": "alice-1"},
                content=make_wav(1.0, 16_000),
                headers={"content-type": "audio/wav", "authorization": f"Bearer {ALICE}"},
            )
            assert turn.status_code == 200
        async with client(server.url, f"?api_key={MALLORY}") as c:
            started = await start(c, session_id="alice-1")
            assert started["resumed"] is False
            await c.speak()
            await c.until("response.done")
        assert [m.role for m in llm.calls[-1]] == ["system", "user"]
        async with client(server.url, f"?api_key={ALICE}") as c:
            started = await start(c, session_id="alice-1")
            assert started["resumed"] is True


async def test_an_absurd_transcript_is_cut_before_the_model_and_the_history(
    live_server: ServerFactory,
) -> None:
    llm = FakeLLM()
    stt = FakeSTT("word " * 200_000)  # a misbehaving recognizer: 1 MB of text
    async with (
        live_server(fake_providers(stt=stt, llm=llm), max_transcript_chars=2000) as server,
        httpx.AsyncClient(base_url=server.url, timeout=HANG_S) as http,
    ):
        for _ in range(3):
            turn = await http.post(
                "/api/orchestrator/dialogue",
                params={"session_id": "big"},
                content=make_wav(1.0, 16_000),
                headers={"content-type": "audio/wav"},
            )
            assert turn.status_code == 200
        history = await server.app.state.services.sessions.history("big")
    prompt = llm.calls[-1]
    assert len(prompt[-1].content) == 2000
    assert sum(len(m.content) for m in prompt) < 3 * 2000 + 1000
    assert all(len(t.user) == 2000 for t in history)
