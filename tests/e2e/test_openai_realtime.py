"""The OpenAI Realtime protocol on /v1/realtime, driven by the official ``openai`` SDK (GA and
beta clients) against a real uvicorn on scripted fakes, with real speech."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voice_orchestrator import g711
from voice_orchestrator.audio import decode

from ..conftest import HANG_S, REPO
from ..fakes import FakeLLM, FakeTTS, fake_providers
from .conftest import LiveServer, ServerFactory

RATE = 24_000
QUESTION = decode(
    (REPO / "tests" / "assets" / "question.wav").read_bytes(),
    min_s=0.1,
    max_s=60,
    target_rate=RATE,
).audio.pcm
REPLY = "The capital of France is Paris. It is big."
WAIT_S = HANG_S  # hang guard only


@asynccontextmanager
async def realtime(
    server: LiveServer, *, beta: bool = False, api_key: str = "sk-anything"
) -> AsyncIterator[Any]:
    ws_url = server.url.replace("http://", "ws://") + "/v1"
    # The beta client builds wss:// from an http base URL; a plain ws:// server needs the
    # websocket base URL spelled out.
    client = AsyncOpenAI(
        base_url=server.url + "/v1", api_key=api_key, websocket_base_url=ws_url if beta else None
    )
    realtime_api = client.beta.realtime if beta else client.realtime
    try:
        async with realtime_api.connect(model="gpt-realtime") as connection:
            yield connection
    finally:
        await client.close()


async def until(connection: Any, kind: str) -> list[Any]:
    """Every event up to and including the first of type ``kind``."""
    events = []
    async with asyncio.timeout(WAIT_S):
        while True:
            event = await connection.recv()
            events.append(event)
            if event.type == kind:
                return events


def of(events: list[Any], kind: str) -> list[Any]:
    return [event for event in events if event.type == kind]


async def append(connection: Any, pcm: bytes, chunk: int = RATE // 10 * 2) -> None:
    for offset in range(0, len(pcm), chunk):
        data = base64.b64encode(pcm[offset : offset + chunk]).decode()
        await connection.input_audio_buffer.append(audio=data)


def audio_of(events: list[Any]) -> bytes:
    deltas = [
        e for e in events if e.type in ("response.output_audio.delta", "response.audio.delta")
    ]
    return b"".join(base64.b64decode(e.delta) for e in deltas)


async def test_spoken_push_to_talk_turn(live_server: ServerFactory) -> None:
    providers = fake_providers()
    async with live_server(providers) as server, realtime(server) as connection:
        created = await until(connection, "session.created")
        assert created[0].session.audio.input.format.type == "audio/pcm"
        await connection.session.update(
            session={
                "type": "realtime",
                "audio": {"input": {"turn_detection": None, "transcription": {"model": "x"}}},
            }
        )
        updated = (await until(connection, "session.updated"))[-1]
        assert updated.session.audio.input.turn_detection is None
        assert updated.session.audio.input.transcription.model == "fake-model"
        await append(connection, QUESTION)
        await connection.input_audio_buffer.commit()
        await connection.response.create()
        events = await until(connection, "response.done")

    kinds = [event.type for event in events]
    assert kinds.index("input_audio_buffer.committed") < kinds.index("response.created")
    user_item = of(events, "input_audio_buffer.committed")[0].item_id
    transcription = of(events, "conversation.item.input_audio_transcription.completed")
    assert [(t.item_id, t.transcript) for t in transcription] == [
        (user_item, "What is the capital of France?")
    ]
    # The response answered the committed audio: all of it reached the recognizer.
    heard = providers.stt.calls[0]  # type: ignore[attr-defined]
    assert heard.duration_s == pytest.approx(len(QUESTION) / 2 / RATE, abs=0.05)
    transcript = "".join(e.delta for e in of(events, "response.output_audio_transcript.delta"))
    assert transcript == REPLY
    audio = audio_of(events)
    tts = providers.tts
    assert isinstance(tts, FakeTTS)
    spoken_s = sum(max(0.05, len(text) * tts.seconds_per_char) for text, _ in tts.calls)
    assert len(audio) / 2 / RATE == pytest.approx(spoken_s, abs=0.01)
    done = events[-1].response
    assert done.status == "completed"
    assert done.output[0].content[0].type == "output_audio"
    assert done.output[0].content[0].transcript == REPLY
    assert kinds.index("response.output_audio.done") < kinds.index("response.done")


async def test_text_in_text_out(live_server: ServerFactory) -> None:
    providers = fake_providers()
    async with live_server(providers) as server, realtime(server) as connection:
        await until(connection, "session.created")
        await connection.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await until(connection, "session.updated")
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Where is Paris?"}],
            }
        )
        await connection.response.create(response={"instructions": "Answer in French."})
        events = await until(connection, "response.done")

    assert "".join(e.delta for e in of(events, "response.output_text.delta")) == REPLY
    assert of(events, "response.output_text.done")[0].text == REPLY
    assert audio_of(events) == b""
    assert providers.tts.calls == []  # type: ignore[attr-defined]
    messages = providers.llm.calls[0]  # type: ignore[attr-defined]
    assert (messages[0].role, messages[0].content) == ("system", "Answer in French.")
    assert (messages[-1].role, messages[-1].content) == ("user", "Where is Paris?")
    assert events[-1].response.output_modalities == ["text"]
    assert events[-1].response.output[0].content[0].text == REPLY


async def test_truncate_keeps_the_words_of_the_audio_played(live_server: ServerFactory) -> None:
    providers = fake_providers()
    async with live_server(providers) as server, realtime(server) as connection:
        await until(connection, "session.created")
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi"}],
            }
        )
        await connection.response.create()
        events = await until(connection, "response.done")
        item_id = events[-1].response.output[0].id
        # "The capital of France is Paris." is 0.31 s of speech: just under half of it holds
        # three of its six words.
        await connection.conversation.item.truncate(
            item_id=item_id, content_index=0, audio_end_ms=150
        )
        truncated = (await until(connection, "conversation.item.truncated"))[-1]
        assert (truncated.item_id, truncated.audio_end_ms) == (item_id, 150)
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "And?"}],
            }
        )
        await connection.response.create()
        await until(connection, "response.done")

    context = providers.llm.calls[1]  # type: ignore[attr-defined]
    assert [(m.role, m.content) for m in context[1:]] == [
        ("user", "Hi"),
        ("assistant", "The capital of"),
        ("user", "And?"),
    ]


async def test_cancel(live_server: ServerFactory) -> None:
    llm = FakeLLM(("One. ", "Two. ", "Three. ", "Four."), token_s=0.5)
    async with live_server(fake_providers(llm=llm)) as server, realtime(server) as connection:
        await until(connection, "session.created")
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Count"}],
            }
        )
        await connection.response.create()
        await until(connection, "response.output_audio.delta")
        await connection.response.cancel()
        events = await until(connection, "response.done")

    done = events[-1].response
    assert done.status == "cancelled"
    assert done.status_details.reason == "client_cancelled"
    assert done.output[0].status == "incomplete"
    assert llm.stream_closed
    assert llm.tokens_sent < 4


async def test_server_vad_answers_by_itself(live_server: ServerFactory) -> None:
    providers = fake_providers()
    async with live_server(providers) as server, realtime(server) as connection:
        await until(connection, "session.created")
        await append(connection, QUESTION + bytes(RATE * 2))  # then 1 s of silence
        events = await until(connection, "response.done")

    started = of(events, "input_audio_buffer.speech_started")[0]
    stopped = of(events, "input_audio_buffer.speech_stopped")[0]
    assert started.item_id == stopped.item_id
    assert 0 <= started.audio_start_ms < stopped.audio_end_ms <= len(QUESTION) // 48 + 1000
    assert of(events, "input_audio_buffer.committed")[0].item_id == started.item_id
    assert events[-1].response.status == "completed"
    assert audio_of(events)


async def test_g711_in_and_out(live_server: ServerFactory) -> None:
    question_8k = decode(
        (REPO / "tests" / "assets" / "question.wav").read_bytes(),
        min_s=0.1,
        max_s=60,
        target_rate=8000,
    ).audio.pcm
    providers = fake_providers()
    async with live_server(providers) as server, realtime(server) as connection:
        await until(connection, "session.created")
        pcmu = {"type": "audio/pcmu"}
        await connection.session.update(
            session={
                "type": "realtime",
                "audio": {
                    "input": {"format": pcmu, "turn_detection": None},
                    "output": {"format": pcmu},
                },
            }
        )
        await until(connection, "session.updated")
        await append(connection, g711.ulaw_encode(question_8k), chunk=800)
        await connection.input_audio_buffer.commit()
        await connection.response.create()
        events = await until(connection, "response.done")

    heard = providers.stt.calls[0]  # type: ignore[attr-defined]
    assert heard.duration_s == pytest.approx(len(question_8k) / 2 / 8000, abs=0.05)
    tts = providers.tts
    assert isinstance(tts, FakeTTS)
    spoken_s = sum(max(0.05, len(text) * tts.seconds_per_char) for text, _ in tts.calls)
    assert len(audio_of(events)) / 8000 == pytest.approx(spoken_s, abs=0.01)  # a byte a sample
    assert events[-1].response.audio.output.format.type == "audio/pcmu"


async def test_beta_dialect(live_server: ServerFactory) -> None:
    async with live_server() as server, realtime(server, beta=True) as connection:
        created = (await until(connection, "session.created"))[-1]
        assert created.session.input_audio_format == "pcm16"
        assert created.session.modalities == ["text", "audio"]
        await connection.session.update(
            session={"turn_detection": None, "input_audio_transcription": {"model": "whisper-1"}}
        )
        updated = (await until(connection, "session.updated"))[-1]
        assert updated.session.turn_detection is None
        await append(connection, QUESTION)
        await connection.input_audio_buffer.commit()
        await connection.response.create()
        events = await until(connection, "response.done")

    kinds = {event.type for event in events}
    assert kinds >= {
        "conversation.item.created",
        "conversation.item.input_audio_transcription.completed",
        "response.audio.delta",
        "response.audio.done",
        "response.audio_transcript.delta",
        "response.audio_transcript.done",
    }
    assert not any(kind.startswith("response.output_audio") for kind in kinds)
    done = events[-1].response
    assert (done.status, done.modalities, done.output_audio_format) == (
        "completed",
        ["text", "audio"],
        "pcm16",
    )
    assert done.output[0].content[0].type == "audio"
    assert done.output[0].content[0].transcript == REPLY


async def test_keys(live_server: ServerFactory) -> None:
    async with live_server(api_keys=["right-key"]) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with realtime(server, api_key="wrong-key"):
                pass
        assert refused.value.response.status_code == 403
        async with realtime(server, api_key="right-key") as connection:
            assert (await until(connection, "session.created"))[-1].type == "session.created"
        # Browsers cannot set headers: the key and the dialect come as subprotocols.
        url = server.url.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime"
        protocols = ["realtime", "openai-insecure-api-key.right-key", "openai-beta.realtime-v1"]
        async with connect(url, subprotocols=protocols) as ws:
            assert ws.subprotocol == "realtime"
            created = json.loads(await ws.recv())
            assert (created["type"], created["session"]["input_audio_format"]) == (
                "session.created",
                "pcm16",
            )
        with pytest.raises(InvalidStatus) as foreign:
            async with connect(url, subprotocols=protocols, origin="https://elsewhere.example"):
                pass
        assert foreign.value.response.status_code == 403


async def test_unknown_and_bad_events_keep_the_socket(live_server: ServerFactory) -> None:
    async with live_server() as server, realtime(server) as connection:
        await until(connection, "session.created")
        await connection.send_raw('{"type": "conversation.dance", "event_id": "evt_1"}')
        error = (await until(connection, "error"))[-1].error
        assert (error.code, error.event_id) == ("INVALID_REQUEST", "evt_1")
        await connection.send_raw("not json")
        assert (await until(connection, "error"))[-1].error.code == "INVALID_REQUEST"
        await connection.input_audio_buffer.commit()  # nothing to commit
        assert (await until(connection, "error"))[-1].error.code == "AUDIO_TOO_SHORT"
        await connection.response.create()  # nothing to answer
        assert (await until(connection, "error"))[-1].error.code == "INVALID_REQUEST"
        await connection.send_raw('{"type": "input_audio_buffer.append", "audio": "%%%"}')
        assert (await until(connection, "error"))[-1].error.code == "INVALID_AUDIO_FORMAT"
        for session in (
            {"type": "realtime", "audio": {"output": {"format": {"type": "audio/mp3"}}}},
            {"type": "realtime", "tools": [{"type": "function", "name": ["not", "a", "name"]}]},
        ):
            await connection.send_raw(json.dumps({"type": "session.update", "session": session}))
            assert (await until(connection, "error"))[-1].error.code == "INVALID_REQUEST"
        await connection.session.update(session={"type": "realtime", "instructions": "Be brief."})
        updated = (await until(connection, "session.updated"))[-1]
        assert updated.session.instructions == "Be brief."


async def test_barge_in_then_truncate_to_what_was_played(live_server: ServerFactory) -> None:
    # At 24 kHz nothing is resampled: "The capital of France is Paris." is 310 ms exactly.
    providers = fake_providers(tts=FakeTTS(sample_rate=RATE))
    async with live_server(providers) as server, realtime(server) as connection:
        await until(connection, "session.created")
        await append(connection, QUESTION + bytes(RATE * 2))
        first = await until(connection, "response.output_audio.delta")
        await append(connection, QUESTION)  # the listener talks over the answer
        cut = first + await until(connection, "response.done")
        assert of(cut, "input_audio_buffer.speech_started")
        done = cut[-1].response
        assert (done.status, done.status_details.reason) == ("cancelled", "turn_detected")
        # The client stopped its playback halfway through what it had received.
        played_ms = len(audio_of(cut)) * 1000 // (2 * RATE) // 2
        await connection.conversation.item.truncate(
            item_id=done.output[0].id, content_index=0, audio_end_ms=played_ms
        )
        await until(connection, "conversation.item.truncated")
        await append(connection, bytes(RATE * 2))
        second = await until(connection, "response.done")
        assert second[-1].response.status == "completed"

    words = ["The", "capital", "of", "France", "is", "Paris."]
    heard = " ".join(words[: math.ceil(len(words) * min(played_ms, 310) / 310)])
    context = providers.llm.calls[1]  # type: ignore[attr-defined]
    assert [(m.role, m.content) for m in context[1:]] == [
        ("user", "What is the capital of France?"),
        ("assistant", heard),
        ("user", "What is the capital of France?"),
    ]


async def test_audio_message_item(live_server: ServerFactory) -> None:
    providers = fake_providers()
    async with live_server(providers) as server, realtime(server) as connection:
        await until(connection, "session.created")
        await connection.session.update(
            session={"type": "realtime", "audio": {"input": {"transcription": {"model": "x"}}}}
        )
        await until(connection, "session.updated")
        audio = base64.b64encode(QUESTION).decode()
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "audio": audio}],
            }
        )
        added = (await until(connection, "conversation.item.added"))[-1].item
        await connection.response.create()
        events = await until(connection, "response.done")

    heard = providers.stt.calls[0]  # type: ignore[attr-defined]
    assert heard.duration_s == pytest.approx(len(QUESTION) / 2 / RATE, abs=0.05)
    transcription = of(events, "conversation.item.input_audio_transcription.completed")[0]
    assert transcription.item_id == added.id
    assert events[-1].response.status == "completed"


async def test_a_draining_instance_finishes_the_answer_then_closes(
    live_server: ServerFactory,
) -> None:
    llm = FakeLLM(("One. ", "Two. ", "Three."), token_s=0.2)
    async with live_server(fake_providers(llm=llm)) as server, realtime(server) as connection:
        await until(connection, "session.created")
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Count"}],
            }
        )
        await connection.response.create()
        await until(connection, "response.output_audio.delta")
        drain = server.app.state.services.drain
        drain.started.set()  # what SIGTERM starts
        done = (await until(connection, "response.done"))[-1].response
        assert done.status == "completed"
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(WAIT_S):
                await connection.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1012
