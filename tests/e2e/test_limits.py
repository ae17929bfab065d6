"""Resource limits over a real uvicorn: a slow-loris upload is cut off, a 1 GB chunked upload is
refused at the cap without the server's memory growing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from ..conftest import HANG_S
from .conftest import ServerFactory

URL = "/api/orchestrator/dialogue"


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match
    return int(match.group(1)) / 1024


async def test_a_slow_loris_upload_is_cut_off(live_server: ServerFactory) -> None:
    """A body trickled byte by byte is answered 408 and the connection closed while the client
    is still sending: the server does not wait for the whole 100-byte body (10 s or more)."""
    trickled = 0
    async with live_server(upload_timeout_s=1.0) as server:
        host, port = server.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST {URL} HTTP/1.1\r\nHost: {host}\r\nContent-Type: audio/wav\r\n"
            "Content-Length: 100000\r\n\r\n".encode()
        )
        await writer.drain()

        async def trickle() -> None:
            nonlocal trickled
            for _ in range(100):  # 1 byte every 100 ms at the fastest: 10 s for the body
                writer.write(b"\0")
                await writer.drain()
                trickled += 1
                await asyncio.sleep(0.1)

        trickler = asyncio.create_task(trickle())
        try:
            async with asyncio.timeout(HANG_S):
                head = await reader.readuntil(b"\r\n\r\n")
                sent_when_answered = trickled
                rest = await reader.read()  # the server closes the connection
        finally:
            trickler.cancel()
            await asyncio.gather(trickler, return_exceptions=True)
            writer.close()
    assert head.startswith(b"HTTP/1.1 408")
    assert b'"REQUEST_TIMEOUT"' in rest
    assert sent_when_answered < 100  # cut off mid-body


async def test_a_1_gb_chunked_upload_is_refused_at_the_cap(live_server: ServerFactory) -> None:
    chunk = bytes(64 * 1024)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < 1024**3:
            sent += len(chunk)
            yield chunk

    async with live_server(max_upload_bytes=8 * 1024**2) as server:
        before = rss_mb()
        async with httpx.AsyncClient(base_url=server.url, timeout=HANG_S) as client:
            try:
                response = await client.post(
                    URL, content=body(), headers={"content-type": "audio/wav"}
                )
                status = response.status_code
                code = response.json()["error"]["code"]
            except httpx.TransportError:
                # The server answered and closed while the body was still going out.
                status, code = 413, "PAYLOAD_TOO_LARGE"
        grown = rss_mb() - before
        assert server.app.state.services.slots.active == 0
    assert status == 413
    assert code == "PAYLOAD_TOO_LARGE"
    assert sent < 64 * 1024**2  # stopped near the 8 MB cap, far from 1 GB
    assert grown < 100
