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
    received, and to ``response.interrupted``. The voice activity detector wants 80 % of
    ``ORCH_VAD_START_MS`` (200) voiced before it calls it speech, so 160 ms is the floor."""
    pcm = speech()
    voiced_at = first_voiced_offset(pcm)
    to_last_frame: list[float] = []
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
                while True:
                    message = await ws.recv()
                    if isinstance(message, bytes):
                        last_frame = loop.time()
                    elif json.loads(message)["type"] == "response.interrupted":
                        interrupted = loop.time()
                        break
                sender.cancel()
                await asyncio.wait({sender})
                to_last_frame.append((last_frame - voiced) * 1000)
                to_event.append((interrupted - voiced) * 1000)
    return {
        "figure": "barge_in",
        "runs": runs,
        "vad_start_ms": settings.vad_start_ms,
        "voiced_to_last_audio_frame_ms": round(statistics.median(to_last_frame), 1),
        "voiced_to_interrupted_event_ms": round(statistics.median(to_event), 1),
        "over_vad_floor_ms": round(statistics.median(to_event) - 0.8 * settings.vad_start_ms, 1),
        "contract_ms": 100,
        "note": "the contract's 100 ms counts from the detection of speech; the floor is the "
        "minimum speech duration that keeps a cough from interrupting",
    }
