"""The Redis session store against a real redis-server: trimming, expiry, sharing between
instances (REST and WebSocket), and what happens when Redis is not there."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from voice_orchestrator.errors import SessionStoreUnavailable
from voice_orchestrator.main import create_app
from voice_orchestrator.pipeline.sessions import RedisSessionStore, Turn, open_session_store

from ..conftest import make_settings, running
from ..e2e.conftest import serve
from ..fakes import FakeLLM, fake_providers, make_wav
from ..redis_server import free_port
from ..ws_client import client, start


def new_id() -> str:
    return uuid.uuid4().hex


async def test_history_keeps_the_last_turns_in_order(redis_url: str) -> None:
    store = RedisSessionStore(redis_url, max_turns=3, ttl_s=60)
    session = new_id()
    try:
        assert await store.history(session) == []
        for i in range(5):
            await store.append(session, Turn(f"question {i}", f"answer {i} ünïcode"))
        assert await store.history(session) == [
            Turn(f"question {i}", f"answer {i} ünïcode") for i in (2, 3, 4)
        ]
    finally:
        await store.aclose()


async def test_two_instances_share_a_session(redis_url: str) -> None:
    first = RedisSessionStore(redis_url, max_turns=10, ttl_s=60)
    second = RedisSessionStore(redis_url, max_turns=10, ttl_s=60)
    session = new_id()
    try:
        await first.append(session, Turn("hello", "hi"))
        await second.append(session, Turn("how are you", "well"))
        assert [t.user for t in await first.history(session)] == ["hello", "how are you"]
    finally:
        await first.aclose()
        await second.aclose()


async def test_sessions_expire_after_their_ttl(redis_url: str) -> None:
    store = RedisSessionStore(redis_url, max_turns=10, ttl_s=0.3)
    session = new_id()
    try:
        await store.append(session, Turn("a", "b"))
        assert await store.history(session)
        for _ in range(100):
            if not await store.history(session):
                break
            await asyncio.sleep(0.05)
        assert await store.history(session) == []
    finally:
        await store.aclose()


async def test_an_unreachable_redis_is_a_domain_error() -> None:
    store = RedisSessionStore(f"redis://127.0.0.1:{free_port()}/0", max_turns=3, ttl_s=60)
    try:
        with pytest.raises(SessionStoreUnavailable):
            await store.history("x")
        with pytest.raises(SessionStoreUnavailable):
            await store.append("x", Turn("a", "b"))
    finally:
        await store.aclose()


async def test_a_wrong_store_url_stops_start_up_without_showing_the_password() -> None:
    url = f"redis://user:s3cret-pw@127.0.0.1:{free_port()}/0"
    with pytest.raises(RuntimeError, match="ORCH_SESSION_STORE") as error:
        await open_session_store(make_settings(session_store=url))
    assert "s3cret-pw" not in str(error.value)
    app = create_app(make_settings(session_store=url), fake_providers())
    with pytest.raises(RuntimeError, match="ORCH_SESSION_STORE"):
        async with running(app):
            pass


async def test_rest_turns_on_two_instances_share_history(redis_url: str) -> None:
    llm_a, llm_b = FakeLLM(), FakeLLM()
    session = new_id()
    body = make_wav(1.0)
    params = {"session_id": session}
    headers = {"content-type": "audio/wav"}
    app_a = create_app(make_settings(session_store=redis_url), fake_providers(llm=llm_a))
    app_b = create_app(make_settings(session_store=redis_url), fake_providers(llm=llm_b))
    async with running(app_a) as a, running(app_b) as b:
        first = await a.post("/api/orchestrator/dialogue", content=body, params=params,
                             headers=headers)  # fmt: skip
        assert first.status_code == 200, first.text
        second = await b.post("/api/orchestrator/dialogue", content=body, params=params,
                              headers=headers)  # fmt: skip
        assert second.status_code == 200, second.text
    context = [(m.role, m.content) for m in llm_b.calls[0]]
    assert ("user", "What is the capital of France?") in context
    assert ("assistant", "The capital of France is Paris. It is big.") in context


async def test_a_broken_store_fails_the_turn_cleanly(redis_url: str) -> None:
    app = create_app(make_settings(session_store=redis_url), fake_providers())
    async with running(app) as client:
        store = app.state.services.sessions
        await store.aclose()
        store._redis = RedisSessionStore(  # what a Redis that went away looks like
            f"redis://127.0.0.1:{free_port()}/0", max_turns=1, ttl_s=1
        )._redis
        response = await client.post(
            "/api/orchestrator/dialogue",
            content=make_wav(1.0),
            params={"session_id": "x"},
            headers={"content-type": "audio/wav"},
        )
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "INTERNAL_ERROR"
        assert app.state.services.slots.active == 0


async def test_a_websocket_session_resumes_on_another_instance(redis_url: str) -> None:
    llm_b = FakeLLM()
    session = new_id()
    app_a = create_app(make_settings(session_store=redis_url), fake_providers())
    app_b = create_app(make_settings(session_store=redis_url), fake_providers(llm=llm_b))
    async with serve(app_a) as server_a, serve(app_b) as server_b:
        for server, expect_resumed in ((server_a, False), (server_b, True)):
            async with client(server.url) as c:
                started = await start(c, session_id=session)
                assert started["resumed"] is expect_resumed
                await c.speak()
                await c.until("response.done")
    roles = [m.role for m in llm_b.calls[0]]
    assert roles.count("assistant") == 1
