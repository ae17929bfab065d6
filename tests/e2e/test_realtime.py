"""The WebSocket conversation over a real uvicorn with a real WebSocket client, scripted fakes
and real speech for the voice activity detector."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voice_orchestrator.pipeline.vad import SAMPLE_RATE

from .. import ws_client
from ..conftest import HANG_S
from ..fakes import FakeLLM, FakeSTT, FakeTTS, fake_providers
from ..ws_client import QUESTION, SILENCE, Client, start
from .conftest import LiveServer, ServerFactory


@asynccontextmanager
async def client(server: LiveServer, query: str = "", **kw: Any) -> AsyncIterator[Client]:
    """The shared test client (``tests/ws_client.py``) on a live server."""
    async with ws_client.client(server.url, query, **kw) as c:
        yield c


def slow_tts() -> FakeTTS:
    """About 3 s of speech per sentence: a reply keeps playing long enough to interrupt."""
    return FakeTTS(seconds_per_char=0.2)


async def test_a_full_turn_ends_on_silence_with_events_in_order(
    live_server: ServerFactory,
) -> None:
    async with live_server() as server, client(server) as c:
        started = await start(c)
        assert started["input_audio"] == {
            "format": "pcm_s16le",
            "sample_rate": 16000,
            "channels": 1,
        }
        await c.speak()
        done = await c.until("response.done")
    types = c.types()
    assert types[:4] == ["session.started", "speech.started", "speech.stopped", "transcript.final"]
    assert types[-3:] == ["audio", "response.audio.done", "response.done"]
    assert "response.text.delta" in types
    assert types.index("response.audio.start") < types.index("audio")
    events = [e for e in c.received if isinstance(e, dict)]
    transcript = next(e for e in events if e["type"] == "transcript.final")
    assert transcript["text"] == "What is the capital of France?"
    assert transcript["turn_id"] == done["turn_id"]
    deltas = "".join(e["text"] for e in events if e["type"] == "response.text.delta")
    assert done["text"] == deltas.strip() == "The capital of France is Paris. It is big."
    assert done["interrupted"] is False
    assert {"stt_ms", "llm_ms", "tts_ms", "first_audio_ms", "total_ms"} <= done["timings_ms"].keys()
    audio_start = next(e for e in events if e["type"] == "response.audio.start")
    audio = b"".join(e for e in c.received if isinstance(e, bytes))
    # The fake speaks 0.01 s per character of each sentence, at the announced rate.
    assert audio_start["sample_rate"] == 22_050
    assert len(audio) / 2 / 22_050 == pytest.approx((31 + 10) * 0.01, abs=0.005)
    assert server.app.state.services.slots.active == 0


async def test_audio_is_paced_at_real_time_with_a_bounded_lead(
    live_server: ServerFactory,
) -> None:
    async with (
        live_server(fake_providers(tts=FakeTTS(seconds_per_char=0.05))) as server,
        client(server) as c,
    ):
        await start(c)
        await c.speak()
        await c.until("response.audio.start")
        loop = asyncio.get_running_loop()
        first = loop.time()
        total = 0
        while isinstance(item := await c.next(), bytes):
            total += len(item)
        elapsed = loop.time() - first
    audio_s = total / 2 / 22_050
    assert audio_s == pytest.approx(41 * 0.05, abs=0.01)
    # Sent no faster than it plays, less the 250-ms lead; pacing keeps the socket from
    # dumping 2 s of audio at once.
    assert elapsed >= audio_s - 0.25 - 0.05


async def test_input_commit_ends_the_turn_without_waiting_for_silence(
    live_server: ServerFactory,
) -> None:
    stt = FakeSTT()
    async with live_server(fake_providers(stt=stt)) as server, client(server) as c:
        await start(c)
        await c.speak(then_silence=False)
        await c.send(type="input.commit")
        done = await c.until("response.done")
    assert done["interrupted"] is False
    assert "speech.stopped" in c.types()
    # The whole question (and nothing more) went to the recognizer.
    assert stt.calls[-1].duration_s == pytest.approx(len(QUESTION) / 2 / SAMPLE_RATE, abs=0.35)


async def test_commit_of_too_little_audio_is_an_error_and_the_session_goes_on(
    live_server: ServerFactory,
) -> None:
    async with live_server() as server, client(server) as c:
        await start(c)
        await c.send(type="input.commit")
        error = await c.until("error")
        assert error["code"] == "AUDIO_TOO_SHORT"
        await c.speak()
        done = await c.until("response.done")
        assert done["interrupted"] is False


async def test_speech_during_the_answer_interrupts_it(live_server: ServerFactory) -> None:
    llm = FakeLLM()
    async with live_server(fake_providers(llm=llm, tts=slow_tts())) as server, client(server) as c:
        await start(c)
        await c.speak()
        await c.until("response.audio.start")
        for _ in range(5):
            assert isinstance(await c.next(), bytes)
        await c.speak(then_silence=False)
        interrupted = await c.until("response.interrupted")
        # Nothing of the interrupted turn follows: the next items are its response.done
        # and then the new utterance's events, with no audio frame in between.
        after: list[dict[str, Any] | bytes] = []
        while not (isinstance(item := await c.next(), dict) and item["type"] == "speech.started"):
            after.append(item)
        assert not any(isinstance(item, bytes) for item in after)
        done = next(i for i in after if isinstance(i, dict) and i["type"] == "response.done")
        assert done["turn_id"] == interrupted["turn_id"]
        assert done["interrupted"] is True
        spoken = done["text"]
        assert spoken
        assert len(spoken) < len("The capital of France is Paris. It is big.")
        assert "The capital of France is Paris.".startswith(spoken)
        # The next turn's context holds only what was spoken of the cut reply.
        await c.ws.send(SILENCE)
        await c.until("transcript.final")
        async with asyncio.timeout(HANG_S):
            while len(llm.calls) < 2:
                await asyncio.sleep(0.02)
        assert server.app.state.services.slots.active <= 1
    history = [(m.role, m.content) for m in llm.calls[1]]
    assert ("assistant", spoken) in history
    assert llm.stream_closed


async def test_response_cancel_stops_the_answer(live_server: ServerFactory) -> None:
    async with live_server(fake_providers(tts=slow_tts())) as server, client(server) as c:
        await start(c)
        await c.speak()
        await c.until("response.audio.start")
        await c.send(type="response.cancel")
        interrupted = await c.until("response.interrupted")
        done = await c.next()
        assert isinstance(done, dict)
        assert done == {**done, "type": "response.done", "interrupted": True}
        assert done["turn_id"] == interrupted["turn_id"]
        # The session is still up.
        await c.send(type="response.cancel")
        await c.speak()
        assert (await c.until("response.done"))["interrupted"] is False
        assert server.app.state.services.slots.active == 0


async def test_a_cough_does_not_interrupt(live_server: ServerFactory) -> None:
    async with live_server(fake_providers(tts=slow_tts())) as server, client(server) as c:
        await start(c)
        await c.speak()
        await c.until("response.audio.start")
        await c.ws.send(QUESTION[8000 : 8000 + 3200])  # 100 ms of speech, then quiet
        await c.ws.send(SILENCE)
        done = await c.until("response.done")
        assert done["interrupted"] is False
        assert "response.interrupted" not in c.types()


async def test_history_carries_over_turns_and_reconnection(live_server: ServerFactory) -> None:
    llm = FakeLLM()
    async with live_server(fake_providers(llm=llm), max_history_turns=10) as server:
        async with client(server) as c:
            session_id = (await start(c, session_id="kitchen-42"))["session_id"]
            assert session_id == "kitchen-42"
            await c.speak()
            await c.until("response.done")
            await c.speak()
            await c.until("response.done")
        async with client(server) as c:
            started = await start(c, session_id="kitchen-42")
            assert started["resumed"] is True
            await c.speak()
            await c.until("response.done")
        async with client(server) as c:
            assert (await start(c))["session_id"] != "kitchen-42"
            await c.speak()
            await c.until("response.done")
    roles = [[m.role for m in call] for call in llm.calls]
    assert roles[0][-1] == "user"
    assert roles[1].count("assistant") == 1
    assert roles[2].count("assistant") == 2  # after the reconnection
    assert roles[3].count("assistant") == 0  # a new session starts afresh
    assert ("assistant", "The capital of France is Paris. It is big.") in [
        (m.role, m.content) for m in llm.calls[2]
    ]


@pytest.mark.parametrize("redact", [True, False])
async def test_card_numbers_are_redacted_unless_disabled(
    live_server: ServerFactory, redact: bool
) -> None:
    said = "My card is 4111 1111 1111 1111, can you read it?"
    llm = FakeLLM()
    stt = FakeSTT(said)
    async with (
        live_server(fake_providers(stt=stt, llm=llm), redact=redact) as server,
        client(server) as c,
    ):
        await start(c, session_id="card")
        await c.speak()
        transcript = await c.until("transcript.final")
        await c.until("response.done")
        await c.speak()
        await c.until("response.done")
    if redact:
        assert transcript["text"] == "My card is [redacted], can you read it?"
        assert "4111" not in json.dumps([(m.role, m.content) for m in llm.calls[1][:-1]])
    else:
        assert transcript["text"] == said


async def test_bad_frames_get_errors_and_the_session_stays_up(
    live_server: ServerFactory,
) -> None:
    async with live_server() as server, client(server) as c:
        await start(c)
        cases: list[str | bytes] = [
            "{not json",
            json.dumps({"type": "nonsense"}),
            json.dumps({"type": "session.start", "session_id": "again"}),
            json.dumps([1, 2]),
            b"\x00" * (64 * 1024 + 2),
            b"\x00" * 3,
        ]
        codes = []
        for frame in cases:
            await c.ws.send(frame)
            codes.append((await c.until("error"))["code"])
        assert codes == ["INVALID_REQUEST"] * 4 + ["INVALID_AUDIO_FORMAT"] * 2
        await c.speak()
        assert (await c.until("response.done"))["interrupted"] is False


async def test_a_bad_session_id_is_refused(live_server: ServerFactory) -> None:
    async with live_server() as server, client(server) as c:
        await c.send(type="session.start", session_id="../../etc")
        assert (await c.until("error"))["code"] == "INVALID_REQUEST"


async def test_sessions_over_the_limit_are_refused_with_1013(live_server: ServerFactory) -> None:
    async with live_server(max_sessions=1) as server, client(server) as first:
        await start(first)
        async with client(server) as second:
            error = await second.until("error")
            assert error["code"] == "TOO_MANY_REQUESTS"
            with pytest.raises(ConnectionClosed) as closed:
                await second.next()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1013
        await first.speak()
        assert (await first.until("response.done"))["interrupted"] is False


async def test_a_turn_without_a_free_slot_is_refused_and_the_session_goes_on(
    live_server: ServerFactory,
) -> None:
    async with live_server(max_concurrency=1) as server, client(server) as c:
        await start(c)
        slots = server.app.state.services.slots
        async with slots.acquire():  # a REST request holds the only slot
            await c.speak()
            error = await c.until("error")
        assert error["code"] == "TOO_MANY_REQUESTS"
        assert error["turn_id"]
        await c.speak()
        assert (await c.until("response.done"))["interrupted"] is False


async def test_a_client_gone_mid_answer_cancels_its_work(live_server: ServerFactory) -> None:
    llm = FakeLLM(token_s=0.5)
    async with live_server(fake_providers(llm=llm, tts=slow_tts())) as server:
        async with client(server) as c:
            await start(c)
            await c.speak()
            await c.until("response.audio.start")
        services = server.app.state.services
        async with asyncio.timeout(HANG_S):
            while services.open_sockets or services.slots.active or not llm.stream_closed:
                await asyncio.sleep(0.02)
        assert services.open_sockets == 0
        assert services.slots.active == 0
        assert llm.stream_closed
        assert llm.tokens_sent < len(llm.tokens)


async def test_session_end_closes_normally(live_server: ServerFactory) -> None:
    async with live_server() as server, client(server) as c:
        await start(c)
        await c.send(type="session.end")
        ended = await c.until("session.ended")
        assert ended["session_id"]
        with pytest.raises(ConnectionClosed) as closed:
            await c.next()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1000


async def test_the_socket_needs_a_key_when_keys_are_set(live_server: ServerFactory) -> None:
    async with live_server(api_keys="k1,k2") as server:
        with pytest.raises(InvalidStatus) as refused:
            async with client(server):
                pass
        assert refused.value.response.status_code == 403
        async with client(server, "?api_key=k2") as c:
            await start(c)
        async with client(server, additional_headers={"Authorization": "Bearer k1"}) as c:
            await start(c)


async def test_speaking_before_the_answer_starts_drops_the_pending_turn(
    live_server: ServerFactory,
) -> None:
    stt = FakeSTT(delay_s=0.3)
    llm = FakeLLM()
    async with live_server(fake_providers(stt=stt, llm=llm)) as server, client(server) as c:
        await start(c)
        await c.speak()
        await c.until("speech.stopped")
        await c.speak()  # before the first transcript is ready
        cut = await c.until("response.done")
        assert cut["interrupted"] is True
        assert cut["text"] == ""
        done = await c.until("response.done")
        assert done["interrupted"] is False
        events = [e for e in c.received if isinstance(e, dict)]
        interrupted = [e for e in events if e["type"] == "response.interrupted"]
        assert len(interrupted) == 1
        assert interrupted[0]["turn_id"] != done["turn_id"]
    # The cut turn's words were not lost: they open the next utterance, which the recognizer
    # heard whole, and the history holds no empty answer.
    assert stt.calls[-1].duration_s > 1.5 * len(QUESTION) / 2 / SAMPLE_RATE
    assert [m.role for m in llm.calls[-1]] == ["system", "user"]


async def test_transcription_starts_on_a_pause_before_the_turn_is_over(
    live_server: ServerFactory,
) -> None:
    stt = FakeSTT(delay_s=0.2)
    async with live_server(fake_providers(stt=stt)) as server, client(server) as c:
        await start(c)
        await c.speak(then_silence=False)
        # Silence at real-time pace: the pause (200 ms) comes well before the end (600 ms).
        frame = bytes(640)
        for _ in range(40):
            await c.ws.send(frame)
            await asyncio.sleep(0.02)
        await c.until("speech.stopped")
        stopped_at = time.perf_counter() - stt.timeline.start  # the fake's clock
        done = await c.until("response.done")
    # The recognizer was called once, on the pause, before the end of the turn was known.
    assert len(stt.calls) == 1
    assert stt.timeline.at("stt.start") < stopped_at
    # Its time is counted from the pause, when it started, to when it finished.
    assert done["timings_ms"]["stt_ms"] >= 200
