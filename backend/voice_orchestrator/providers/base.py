"""Provider Protocols and the value types that cross them.

Fakes and real engines satisfy these structurally; nothing inherits from them. Streaming methods
are plain ``def ... -> AsyncIterator[T]`` so that ``async def ... yield`` implementations match.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ..audio import Audio

HealthStatus = Literal["healthy", "degraded", "unhealthy"]
Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """What one probe of a provider found. ``detail`` is safe to show to anyone."""

    status: HealthStatus
    latency_ms: float
    detail: str = ""


class Provider(Protocol):
    """What every provider has: a name and model for status pages, a probe and a close."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def health(self) -> ProviderHealth:
        """Probes the engine or upstream once; never raises."""
        ...

    async def aclose(self) -> None:
        """Releases clients, threads and models."""
        ...


class SpeechToText(Provider, Protocol):
    @property
    def sample_rate(self) -> int:
        """The rate the provider wants its input at; uploads are resampled to it."""
        ...

    async def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        """Transcribes one utterance. Raises ProviderError subclasses."""
        ...


class ChatModel(Provider, Protocol):
    def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """Yields the reply as text deltas as they are generated. Raises ProviderError
        subclasses. Closing the iterator stops generation."""
        ...


class TextToSpeech(Provider, Protocol):
    def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[Audio]:
        """Yields the speech of ``text`` in order, in one or more chunks of one sample rate.
        Raises ProviderError subclasses."""
        ...


@dataclass(frozen=True, slots=True)
class Providers:
    stt: SpeechToText
    llm: ChatModel
    tts: TextToSpeech

    async def aclose(self) -> None:
        for provider in (self.stt, self.llm, self.tts):
            await provider.aclose()
