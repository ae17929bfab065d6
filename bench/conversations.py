"""Conversations per process: how many WebSocket conversations one process carries at real-time
pace before the answers' audio frames arrive late.

The service runs in its own process on instant providers (``bench.instant``). Each simulated
listener sends 20-ms frames of real speech and silence at capture pace (VAD on, so every few
seconds a turn ends and an answer is played, paced by the service). A frame's lateness is how
much later it arrives than its place in the answer's real-time schedule allows (the first
``ORCH_PLAYBACK_LEAD_MS`` may arrive at once). Steps double the conversations until the p99
lateness passes 20 ms; RSS per conversation is the process's growth over its idle size.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.load import instant_service, rss_mb
from bench.realtime import WS_PATH, speech
from voice_orchestrator.pipeline.vad import FRAME_BYTES, SAMPLE_RATE

FRAME_S = FRAME_BYTES / 2 / SAMPLE_RATE
LEAD_S = 0.25
LATE_LIMIT_MS = 20.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class Listener:
    """One conversation: records how late each answer frame arrives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.lateness_ms: list[float] = []
        self.answers = 0

    async def receive(self) -> None:
        loop = asyncio.get_running_loop()
        first = 0.0
        index = 0
        async for message in self.ws:
            now = loop.time()
            if isinstance(message, bytes):
                if index == 0:
                    first = now
                due = first + max(0.0, index * FRAME_S - LEAD_S)
                self.lateness_ms.append(max(0.0, now - due) * 1000)
                index += 1
            elif '"response.done"' in message:
                self.answers += 1
                index = 0


async def step(url: str, conversations: int, seconds: float, pid: int) -> dict[str, Any]:
    # Speech, then silence long enough for the answer to end its turn: a turn every few s.
    audio = speech() + bytes(int(1.5 * SAMPLE_RATE) * 2)
    frames = [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]
    idle_mb = rss_mb(pid)
    sockets = [await connect(url, max_size=2**24) for _ in range(conversations)]
    listeners = [Listener(ws) for ws in sockets]
    for ws in sockets:
        await ws.send(json.dumps({"type": "session.start"}))
    receivers = [asyncio.create_task(listener.receive()) for listener in listeners]
    loop = asyncio.get_running_loop()
    start = loop.time()
    ticks = int(seconds / FRAME_S)
    peak_mb = idle_mb
    try:
        for tick in range(ticks):
            frame = frames[tick % len(frames)]
            # Staggered: conversation i is i frames into the clip, so turns do not line up.
            await asyncio.gather(
                *(
                    ws.send(frames[(tick + i) % len(frames)] or frame)
                    for i, ws in enumerate(sockets)
                )
            )
            if tick % 50 == 0:
                peak_mb = max(peak_mb, rss_mb(pid))
            delay = start + (tick + 1) * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
    finally:
        for ws in sockets:
            await ws.close()
        for task in receivers:
            task.cancel()
        await asyncio.gather(*receivers, return_exceptions=True)
    lateness = [ms for listener in listeners for ms in listener.lateness_ms]
    return {
        "conversations": conversations,
        "answers": sum(listener.answers for listener in listeners),
        "frames": len(lateness),
        "late_p50_ms": round(statistics.median(lateness), 2) if lateness else None,
        "late_p99_ms": round(percentile(lateness, 0.99), 2),
        "rss_per_conversation_mb": round((peak_mb - idle_mb) / conversations, 3),
    }


async def conversations_per_process(
    steps: tuple[int, ...] = (25, 50, 100, 200, 400, 800), seconds: float = 8.0
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    env = {"ORCH_MAX_SESSIONS": "5000", "ORCH_MAX_CONCURRENCY": "1000", "ORCH_LOG_LEVEL": "WARNING"}
    with instant_service(1, **env) as (base, pid):
        url = base.replace("http://", "ws://") + WS_PATH
        for count in steps:
            result = await step(url, count, seconds, pid)
            results.append(result)
            if result["late_p99_ms"] > LATE_LIMIT_MS:
                break
    carried = [r for r in results if r["late_p99_ms"] <= LATE_LIMIT_MS]
    return {
        "figure": "conversations_per_process",
        "late_limit_ms": LATE_LIMIT_MS,
        "steps": results,
        "carried": carried[-1]["conversations"] if carried else 0,
        "note": "client and service share the machine's cores; the client's own CPU is part of "
        "the limit on a 2-core machine",
    }
