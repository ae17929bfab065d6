"""An app on slow scripted fakes, served through ``voice-orchestrator serve``'s own path (and
so draining on SIGTERM): ``serve("tests.e2e.drain_app:app", ...)`` in a subprocess."""

from __future__ import annotations

from fastapi import FastAPI

from voice_orchestrator.main import create_app
from voice_orchestrator.settings import Settings

from ..fakes import FakeLLM, FakeTTS, fake_providers


def app() -> FastAPI:
    # An answer takes about two seconds to produce and three to play.
    llm = FakeLLM(("One two three. ", "Four five six. ", "Seven eight nine."), token_s=0.6)
    tts = FakeTTS(seconds_per_char=0.06)
    return create_app(Settings(), fake_providers(llm=llm, tts=tts), drain_on_sigterm=True)
