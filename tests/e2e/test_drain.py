"""Graceful drain over a real served process: SIGTERM turns /ready 503 at once, new turns get
503 SERVICE_DRAINING, the running REST turn and the socket's answer finish, the socket closes
with 1012, and the process exits on its own."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ..conftest import HANG_S, REPO
from ..fakes import make_wav
from ..redis_server import free_port
from ..ws_client import QUESTION, SILENCE, WS_PATH

DIALOGUE = "/api/orchestrator/dialogue"


@asynccontextmanager
async def served(workers: int = 1) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    port = free_port()
    code = (
        "from voice_orchestrator.cli import serve; "
        f"serve('tests.e2e.drain_app:app', host='127.0.0.1', port={port}, workers={workers})"
    )
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'backend'}",
        "ORCH_DRAIN_TIMEOUT_S": "60",
        "ORCH_LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(HANG_S), httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(f"{url}/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.kill()
        async with asyncio.timeout(HANG_S):
            await proc.wait()


async def exit_code(proc: asyncio.subprocess.Process) -> int:
    async with asyncio.timeout(HANG_S):
        return await proc.wait()


async def test_sigterm_drains_rest_and_socket_then_exits() -> None:
    async with served() as (proc, url), httpx.AsyncClient(timeout=HANG_S) as client:
        wav = make_wav(1.0, 16_000)
        running = asyncio.create_task(
            client.post(f"{url}{DIALOGUE}", content=wav, headers={"content-type": "audio/wav"})
        )
        ws_url = url.replace("http://", "ws://") + WS_PATH
        async with connect(ws_url) as ws:
            for offset in range(0, len(QUESTION + SILENCE), 3200):
                await ws.send((QUESTION + SILENCE)[offset : offset + 3200])
            async with asyncio.timeout(HANG_S):
                while not (isinstance(m := await ws.recv(), str) and "response.audio.start" in m):
                    pass
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(HANG_S):
                while (await client.get(f"{url}/ready")).status_code != 503:
                    await asyncio.sleep(0.05)
            refused = await client.post(
                f"{url}{DIALOGUE}", content=wav, headers={"content-type": "audio/wav"}
            )
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "SERVICE_DRAINING"
            # The socket's answer plays to its end, then the socket closes with 1012.
            done = False
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(HANG_S):
                    while True:
                        message = await ws.recv()
                        if isinstance(message, str) and '"response.done"' in message:
                            assert '"interrupted":false' in message
                            done = True
            assert done
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1012
        answer = await running
        assert answer.status_code == 200
        assert len(answer.content) > 44
        # The server shut down on its own; it ends as a SIGTERM'd process conventionally does.
        assert await exit_code(proc) in (0, -signal.SIGTERM)
