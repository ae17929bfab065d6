"""The service with instant in-process providers, served by uvicorn as ``voice-orchestrator
serve`` serves it: what the service itself can do (HTTP, upload, decode, admission, turn,
encode, metrics, logs) when the stages cost nothing.

The providers answer at once with precomputed results and record nothing, so that a long run
measures the service and not the fakes. Run: ``python -m bench.instant --port 8901
[--workers 2]``; settings come from ``ORCH_*`` as for the service.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import AsyncIterator, Sequence

import numpy as np
from fastapi import FastAPI

from voice_orchestrator.audio import Audio
from voice_orchestrator.cli import serve
from voice_orchestrator.main import create_app
from voice_orchestrator.observability import configure_logging
from voice_orchestrator.providers.base import ChatMessage, ProviderHealth, Providers, Transcript
from voice_orchestrator.settings import Settings

REPLY = ("The capital ", "of France ", "is Paris. ", "It is big.")


class _Instant:
    model = "instant"

    def __init__(self, name: str) -> None:
        self.name = name

    async def health(self) -> ProviderHealth:
        return ProviderHealth("healthy", 0.0)

    async def aclose(self) -> None:
        return None


class InstantSTT(_Instant):
    sample_rate = 16_000

    async def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        return Transcript("What is the capital of France?", language)


class InstantLLM(_Instant):
    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        for token in REPLY:
            yield token


class InstantTTS(_Instant):
    """Every sentence is the same 0.3 s of 22.05-kHz tone, made once."""

    def __init__(self) -> None:
        super().__init__("instant-tts")
        rate = 22_050
        t = np.arange(int(0.3 * rate), dtype=np.float32) / rate
        self._speech = Audio.from_float32(0.3 * np.sin(2 * math.pi * 220 * t), rate)

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[Audio]:
        yield self._speech


def instant_providers() -> Providers:
    return Providers(InstantSTT("instant-stt"), InstantLLM("instant-llm"), InstantTTS())


def app() -> FastAPI:
    """Entry point for ``uvicorn --factory``."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings, instant_providers(), drain_on_sigterm=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    serve("bench.instant:app", host="127.0.0.1", port=args.port, workers=args.workers)


if __name__ == "__main__":
    main()
