"""WebSocket figures: first audio after the end of an utterance, and barge-in latency.

Both run against a real uvicorn with the scripted providers of ``bench.run`` and real speech
(``tests/assets/question.wav``) sent at real-time pace, as a microphone would.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import serve
from tests.fakes import FakeTTS, fake_providers
from websockets.asyncio.client import ClientConnection, connect

from voice_orchestrator.audio import decode
from voice_orchestrator.main import create_app
from voice_orchestrator.pipeline.vad import FRAME_BYTES, SAMPLE_RATE, WebRtcClassifier
from voice_orchestrator.settings import Settings

WS_PATH = "/api/v1/orchestrator/ws"
QUESTION = Path(__file__).resolve().parents[1] / "tests" / "assets" / "question.wav"


def speech() -> bytes:
    return decode(QUESTION.read_bytes(), min_s=0.1, max_s=60, target_rate=SAMPLE_RATE).audio.pcm


def first_voiced_offset(pcm: bytes) -> int:
    """Byte offset of the first frame WebRTC's VAD calls speech."""
    vad = WebRtcClassifier()
    for offset in range(0, len(pcm) - FRAME_BYTES, FRAME_BYTES):
        if vad.is_speech(pcm[offset : offset + FRAME_BYTES]):
            return offset
    raise ValueError("no speech in the clip")


async def send_real_time(ws: ClientConnection, pcm: bytes) -> None:
    """20-ms frames at the pace they would be captured."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
        await ws.send(pcm[offset : offset + FRAME_BYTES])
        delay = start + (index + 1) * FRAME_BYTES / 2 / SAMPLE_RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


async def recv_event(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        message = await ws.recv()
        if isinstance(message, str) and (event := json.loads(message))["type"] == kind:
            return dict(event)


async def ask(ws: ClientConnection, pcm: bytes) -> None:
    """Starts a session and sends a whole utterance, not yet committed."""
    await ws.send(json.dumps({"type": "session.start"}))
    await recv_event(ws, "session.started")
    for offset in range(0, len(pcm), 32_000):
        await ws.send(pcm[offset : offset + 32_000])


async def ws_first_audio(runs: int, scripted: Any, limit_ms: float) -> dict[str, Any]:
    """From ``input.commit`` (the end of the utterance) to the first audio frame received,
    minus the physical limit of the scripted providers."""
    pcm = speech()
    firsts: list[float] = []
    settings = Settings(_env_file=None, max_concurrency=1000)
    async with serve(create_app(settings, scripted())) as server:
        url = server.url.replace("http://", "ws://") + WS_PATH
        for _ in range(runs):
            async with connect(url, max_size=2**24) as ws:
                await ask(ws, pcm)
                start = time.perf_counter()
                await ws.send(json.dumps({"type": "input.commit"}))
                while isinstance(await ws.recv(), str):
                    pass
                firsts.append((time.perf_counter() - start) * 1000)
                await ws.send(json.dumps({"type": "session.end"}))
                await recv_event(ws, "session.ended")
    return {
        "figure": "ws_first_audio_over_limit",
        "limit_ms": limit_ms,
        "runs": runs,
        "ws_commit_first_over_ms": round(statistics.median(firsts) - limit_ms, 1),
        "target_over_ms": 10.0,
    }


async def barge_in(runs: int) -> dict[str, Any]:
    """From the first voiced frame of an interruption to the last audio frame of the answer
    received (the answer pauses at the voice's onset: two voiced frames), to
    ``response.audio.paused`` and to ``response.interrupted`` (speech confirmed: 80 % of
    ``ORCH_VAD_START_MS`` voiced, so 160 ms is that event's floor)."""
    pcm = speech()
    voiced_at = first_voiced_offset(pcm)
    to_last_frame: list[float] = []
    to_paused: list[float] = []
    to_event: list[float] = []
    settings = Settings(_env_file=None)
    # Long answers: 0.2 s of speech a character, so the interruption lands mid-answer.
    providers = fake_providers(tts=FakeTTS(seconds_per_char=0.2))
    async with serve(create_app(settings, providers)) as server:
        url = server.url.replace("http://", "ws://") + WS_PATH
        for _ in range(runs):
            async with connect(url, max_size=2**24) as ws:
                await ask(ws, pcm)
                await ws.send(json.dumps({"type": "input.commit"}))
                await recv_event(ws, "response.audio.start")
                await asyncio.sleep(0.5)  # the answer plays
                loop = asyncio.get_running_loop()
                started = loop.time()
                voiced = started + voiced_at / 2 / SAMPLE_RATE
                sender = asyncio.create_task(send_real_time(ws, pcm))
                last_frame = started
                paused = None
                while True:
                    message = await ws.recv()
                    if isinstance(message, bytes):
                        last_frame = loop.time()
                        continue
                    kind = json.loads(message)["type"]
                    if kind == "response.audio.paused" and paused is None:
                        paused = loop.time()
                    elif kind == "response.interrupted":
                        interrupted = loop.time()
                        break
                sender.cancel()
                await asyncio.wait({sender})
                to_last_frame.append((last_frame - voiced) * 1000)
                to_paused.append(((paused or interrupted) - voiced) * 1000)
                to_event.append((interrupted - voiced) * 1000)
    return {
        "figure": "barge_in",
        "runs": runs,
        "vad_start_ms": settings.vad_start_ms,
        "voiced_to_last_audio_frame_ms": round(statistics.median(to_last_frame), 1),
        "voiced_to_paused_event_ms": round(statistics.median(to_paused), 1),
        "voiced_to_interrupted_event_ms": round(statistics.median(to_event), 1),
        "over_vad_floor_ms": round(statistics.median(to_event) - 0.8 * settings.vad_start_ms, 1),
        "target_voiced_to_last_frame_ms": 40,
        "note": "the audio stops at the voice's onset (two voiced frames, 40 ms); the answer is "
        "cancelled once the speech lasts ORCH_VAD_START_MS, so a cough only pauses it",
    }


async def false_alarm(runs: int) -> dict[str, Any]:
    """A cough during the answer: 60 ms of voice (WebRTC's VAD hangs on for a few frames
    more, 140 ms in all), then silence. The answer pauses at the
    onset and resumes where it paused; the figure is how long it stood still, and whether it
    then played to its end uninterrupted."""
    pcm = speech()
    voiced_at = first_voiced_offset(pcm)
    cough = pcm[voiced_at : voiced_at + 3 * FRAME_BYTES] + bytes(SAMPLE_RATE)
    pauses: list[float] = []
    completed = 0
    settings = Settings(_env_file=None)
    providers = fake_providers(tts=FakeTTS(seconds_per_char=0.05))
    async with serve(create_app(settings, providers)) as server:
        url = server.url.replace("http://", "ws://") + WS_PATH
        for _ in range(runs):
            async with connect(url, max_size=2**24) as ws:
                await ask(ws, pcm)
                await ws.send(json.dumps({"type": "input.commit"}))
                await recv_event(ws, "response.audio.start")
                await asyncio.sleep(0.3)
                loop = asyncio.get_running_loop()
                sender = asyncio.create_task(send_real_time(ws, bytes(SAMPLE_RATE) + cough))
                paused = resumed = None
                while True:
                    message = await ws.recv()
                    if isinstance(message, bytes):
                        continue
                    event = json.loads(message)
                    if event["type"] == "response.audio.paused":
                        paused = loop.time()
                    elif event["type"] == "response.audio.resumed":
                        resumed = loop.time()
                    elif event["type"] == "response.done":
                        completed += not event["interrupted"]
                        break
                sender.cancel()
                await asyncio.wait({sender})
                if paused is not None and resumed is not None:
                    pauses.append((resumed - paused) * 1000)
    return {
        "figure": "barge_in_false_alarm",
        "runs": runs,
        "answers_completed": completed,
        "paused_for_ms": round(statistics.median(pauses), 1) if pauses else None,
        "note": "a cough pauses the answer for the detector's dismissal window, then it resumes",
    }


async def openai_realtime_first_audio(runs: int, scripted: Any, limit_ms: float) -> dict[str, Any]:
    """The OpenAI Realtime socket driven by the official SDK: from ``commit`` plus
    ``response.create`` (push-to-talk) to the first audio delta, minus the physical limit of the
    scripted stages, beside our WebSocket's figure."""
    import base64

    from openai import AsyncOpenAI

    pcm = decode(QUESTION.read_bytes(), min_s=0.1, max_s=60, target_rate=24_000).audio.pcm
    firsts: list[float] = []
    settings = Settings(_env_file=None, max_concurrency=1000)
    async with serve(create_app(settings, scripted())) as server:
        client = AsyncOpenAI(base_url=server.url + "/v1", api_key="bench")
        try:
            for _ in range(runs):
                async with client.realtime.connect(model="gpt-realtime") as connection:
                    await connection.session.update(
                        session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
                    )
                    for offset in range(0, len(pcm), 48_000):
                        chunk = base64.b64encode(pcm[offset : offset + 48_000]).decode()
                        await connection.input_audio_buffer.append(audio=chunk)
                    start = time.perf_counter()
                    await connection.input_audio_buffer.commit()
                    await connection.response.create()
                    async for event in connection:
                        if event.type == "response.output_audio.delta":
                            firsts.append((time.perf_counter() - start) * 1000)
                            break
                    await connection.response.cancel()
        finally:
            await client.close()
    return {
        "figure": "openai_realtime_first_audio_over_limit",
        "limit_ms": limit_ms,
        "runs": runs,
        "commit_to_first_audio_delta_over_ms": round(statistics.median(firsts) - limit_ms, 1),
        "target_over_ms": 10.0,
    }
