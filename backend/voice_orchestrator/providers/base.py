"""Provider Protocols and the value types that cross them.

Fakes and real engines satisfy these structurally; nothing inherits from them. Streaming methods
are plain ``def ... -> AsyncIterator[T]`` so that ``async def ... yield`` implementations match.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..audio import Audio

HealthStatus = Literal["healthy", "degraded", "unhealthy"]
Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for: ``arguments`` is the JSON text of the arguments object as
    the model wrote it (possibly invalid: the tool box checks it)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation. An assistant message may carry ``tool_calls`` (its
    ``content`` then is the text spoken before them, often empty); a ``"tool"`` message is the
    result of the call named by ``tool_call_id``."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


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


class ToolChatModel(ChatModel, Protocol):
    """A chat model that can call tools (the OpenAI-compatible adapter; not the embedded one)."""

    def stream_with_tools(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, Any]]
    ) -> AsyncIterator[str | ToolCall]:
        """Like ``stream`` with ``tools`` (OpenAI chat ``tools`` format) offered to the model:
        yields text deltas as they come, then each complete ToolCall the model asked for, in
        order, when the stream ends. Raises ProviderError subclasses."""
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
