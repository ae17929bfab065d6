"""A test client of the realtime WebSocket: sends speech frames, reads events, and waits for
them under the suite's generous hang guard (``HANG_S``), so a slow machine only waits longer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from voice_orchestrator.audio import decode
from voice_orchestrator.pipeline.vad import SAMPLE_RATE

from .conftest import HANG_S, REPO

WS_PATH = "/api/v1/orchestrator/ws"
QUESTION = decode(
    (REPO / "tests" / "assets" / "question.wav").read_bytes(),
    min_s=0.1,
    max_s=60,
    target_rate=SAMPLE_RATE,
).audio.pcm
SILENCE = bytes(SAMPLE_RATE * 2)  # 1 s


def ws_url(base_url: str, query: str = "") -> str:
    return base_url.replace("http://", "ws://") + WS_PATH + query


class Client:
    """Sends frames and reads events; ``received`` keeps every JSON event and binary frame."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any] | bytes] = []

    async def send(self, **event: Any) -> None:
        await self.ws.send(json.dumps(event))

    async def speak(self, pcm: bytes = QUESTION, *, then_silence: bool = True) -> None:
        data = pcm + (SILENCE if then_silence else b"")
        for offset in range(0, len(data), 3200):
            await self.ws.send(data[offset : offset + 3200])

    async def next(self, wait_s: float = HANG_S) -> dict[str, Any] | bytes:
        async with asyncio.timeout(wait_s):
            message = await self.ws.recv()
        item: dict[str, Any] | bytes = (
            json.loads(message) if isinstance(message, str) else bytes(message)
        )
        self.received.append(item)
        return item

    async def until(self, kind: str, wait_s: float = HANG_S) -> dict[str, Any]:
        """Reads until an event of ``kind``; returns it."""
        async with asyncio.timeout(wait_s):
            while True:
                item = await self.next(wait_s)
                if isinstance(item, dict) and item["type"] == kind:
                    return item

    def types(self) -> list[str]:
        """Event types in order, binary frames as 'audio' (runs collapsed)."""
        out: list[str] = []
        for item in self.received:
            name = "audio" if isinstance(item, bytes) else item["type"]
            if name == "audio" and out and out[-1] == "audio":
                continue
            out.append(name)
        return out


@asynccontextmanager
async def client(base_url: str, query: str = "", **kw: Any) -> AsyncIterator[Client]:
    async with connect(ws_url(base_url, query), max_size=2**22, **kw) as ws:
        yield Client(ws)


async def start(c: Client, **fields: Any) -> dict[str, Any]:
    await c.send(type="session.start", **fields)
    return await c.until("session.started")
