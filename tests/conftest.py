"""Shared fixtures: settings isolated from the environment, apps over fake providers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from voice_orchestrator.main import create_app
from voice_orchestrator.providers.base import Providers
from voice_orchestrator.settings import Settings

from .fakes import fake_providers

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO.parent / "shared" / "data" / "speech"
# Real speech kept in the repository, for tests that must run without ../shared.
QUESTION_WAV = REPO / "tests" / "assets" / "question.wav"


def speech_clip(name: str) -> Path:
    """A clip of ../shared/data/speech; the test is skipped where that folder is absent."""
    if not SPEECH.is_dir():
        pytest.skip(f"real speech clips not found at {SPEECH}")
    return SPEECH / name


# How long a test waits for something that must happen before it calls it a hang. Generous on
# purpose: a slow or loaded machine makes the suite slower, never red. Tests assert what
# happened (events, counters, order), never how fast.
HANG_S = 300.0


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ORCH_ or OPENAI_ variable of the machine leaks into a test, and no .env is read."""
    import os

    for name in list(os.environ):
        if name.startswith(("ORCH_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def make_settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)


AppClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of ``app`` with its lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
def app_client() -> AppClient:
    """``async with app_client(providers, **settings) as client`` over an in-process app."""

    @asynccontextmanager
    async def factory(
        providers: Providers | None = None, **overrides: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(**overrides), providers or fake_providers())
        async with running(app) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client

    return factory
