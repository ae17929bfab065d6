"""A real uvicorn configured as ``voice-orchestrator serve`` configures it (``server_config``:
the guarded HTTP protocols and the WebSocket message limit), in this process on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from voice_orchestrator.main import create_app
from voice_orchestrator.providers.base import Providers
from voice_orchestrator.server import HttpImplementation, server_config

from ..conftest import HANG_S, make_settings
from ..fakes import fake_providers


@dataclass
class Served:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"


@asynccontextmanager
async def served(
    providers: Providers | None = None, *, http: HttpImplementation = "httptools", **overrides: Any
) -> AsyncIterator[Served]:
    """The app over ``providers`` (fakes by default) with settings ``overrides``."""
    settings = make_settings(**overrides)
    app = create_app(settings, providers or fake_providers())
    config = server_config(app, settings, host="127.0.0.1", port=0, http=http)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(HANG_S):
            while not server.started:
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Served("127.0.0.1", port)
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def raw_connection(
    server: Served,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    data = b""
    try:
        while chunk := await reader.read(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data
