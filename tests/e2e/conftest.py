"""A real uvicorn on a free loopback port, serving an app over in-process fakes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from voice_orchestrator.main import create_app
from voice_orchestrator.providers.base import Providers

from ..conftest import HANG_S, make_settings
from ..fakes import fake_providers


@dataclass
class LiveServer:
    url: str
    app: FastAPI


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[LiveServer]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(HANG_S):
            while not server.started:
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield LiveServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        await task


ServerFactory = Callable[..., AbstractAsyncContextManager[LiveServer]]


@pytest.fixture
def live_server() -> ServerFactory:
    """``async with live_server(providers, **settings) as server`` runs a real uvicorn."""

    def factory(providers: Providers | None = None, **overrides: Any) -> Any:
        return serve(create_app(make_settings(**overrides), providers or fake_providers()))

    return factory
