"""The embedded engines, loaded once per test session (about 2 s together)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from voice_orchestrator.providers.base import Providers
from voice_orchestrator.providers.factory import build_providers
from voice_orchestrator.settings import Settings


@pytest.fixture(scope="session")
def engines() -> Iterator[Providers]:
    providers = asyncio.run(build_providers(Settings(_env_file=None)))
    yield providers
    asyncio.run(providers.aclose())
