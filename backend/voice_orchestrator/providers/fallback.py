"""A fallback provider per stage behind a circuit breaker.

The primary serves while it works. When it fails with a retryable ProviderError (after its own
retries), the fallback serves that call: for the language model only while none of the reply
was yielded, for speech synthesis only before the first chunk. A primary that failed
``threshold`` calls in a row is skipped for ``cooldown_s``; then one real call probes it
(half-open), and its success closes the breaker. Errors that a second provider would not change
(not retryable: a bad request, silence) go to the caller as they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Generic, Literal, TypeVar

from ..audio import Audio, resample
from ..errors import ProviderError, ProviderStage
from ..pipeline.aio import aclose
from .base import ChatMessage, Provider, ProviderHealth, SpeechToText, TextToSpeech, Transcript
from .base import ChatModel as ChatModelProtocol

logger = logging.getLogger(__name__)

Role = Literal["primary", "fallback"]
# Called with (stage, role) for every call a provider serves: the metrics' hook.
ServeHook = Callable[[str, str], None]
P = TypeVar("P", bound=Provider)


class Breaker:
    """Opens after ``threshold`` consecutive failures; after ``cooldown_s`` lets one call
    through to probe (half-open), which closes it on success and reopens it on failure."""

    def __init__(
        self,
        *,
        threshold: int = 3,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> Literal["closed", "open", "half-open"]:
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self.cooldown_s:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """Whether the primary should get this call (claims the probe when half-open)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._probing:
            self._probing = True
            return True
        return False

    def succeeded(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._probing = False

    def failed(self) -> None:
        self.failures += 1
        if self._probing or self.failures >= self.threshold:
            self._opened_at = self._clock()
        self._probing = False

    def abandoned(self) -> None:
        """A call that ended neither way (cancelled): a probe may be tried again."""
        self._probing = False


class _Fallback(Generic[P]):
    stage: ProviderStage

    def __init__(
        self, primary: P, fallback: P, breaker: Breaker, on_serve: ServeHook | None = None
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.breaker = breaker
        self._on_serve = on_serve

    @property
    def name(self) -> str:
        return f"{self.primary.name} (fallback {self.fallback.name})"

    @property
    def model(self) -> str:
        return f"{self.primary.model} (fallback {self.fallback.model})"

    async def health(self) -> ProviderHealth:
        """Both are probed. While the primary is healthy (and not skipped) it speaks for the
        stage; otherwise the fallback does, so a serving fallback keeps the stage healthy."""
        first, second = await asyncio.gather(self.primary.health(), self.fallback.health())
        if first.status != "unhealthy" and self.breaker.state == "closed":
            detail = f"primary serves; fallback {second.status}"
            return ProviderHealth(first.status, first.latency_ms, _joined(detail, first.detail))
        why = "skipped after failures" if self.breaker.state != "closed" else first.status
        detail = f"fallback serves (primary {why})"
        return ProviderHealth(second.status, second.latency_ms, _joined(detail, second.detail))

    async def aclose(self) -> None:
        await self.primary.aclose()
        await self.fallback.aclose()

    def _served(self, role: Role) -> None:
        if self._on_serve is not None:
            self._on_serve(self.stage, role)

    def _after_output(self, error: ProviderError) -> None:
        """A failure after output was sent: too late for the fallback, but it counts."""
        if error.retryable:
            self.breaker.failed()
        else:
            self.breaker.succeeded()

    def _falls_back(self, error: ProviderError) -> bool:
        """Records a primary failure; whether the fallback may take the call."""
        if not error.retryable:
            self.breaker.succeeded()  # the primary answered; the request was the problem
            return False
        self.breaker.failed()
        logger.warning(
            "primary provider failed; fallback serves",
            extra={"stage": self.stage, "code": error.code, "breaker": self.breaker.state},
        )
        return True


T = TypeVar("T")


@asynccontextmanager
async def _closing(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Closes a provider's stream when the block ends, however it ends (the Protocol types it
    as an AsyncIterator, which need not have ``aclose``)."""
    try:
        yield stream
    finally:
        await aclose(stream)


def _joined(head: str, tail: str) -> str:
    return f"{head}: {tail}" if tail else head


class FallbackSpeechToText(_Fallback[SpeechToText]):
    stage = "stt"

    @property
    def sample_rate(self) -> int:
        return self.primary.sample_rate

    async def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        if self.breaker.allow():
            try:
                transcript = await self.primary.transcribe(audio, language=language)
            except ProviderError as e:
                if not self._falls_back(e):
                    raise
            except BaseException:
                self.breaker.abandoned()
                raise
            else:
                self.breaker.succeeded()
                self._served("primary")
                return transcript
        if self.fallback.sample_rate != audio.sample_rate:
            audio = await asyncio.to_thread(resample, audio, self.fallback.sample_rate)
        transcript = await self.fallback.transcribe(audio, language=language)
        self._served("fallback")
        return transcript


class _StreamingFallback(_Fallback[P]):
    async def _stream(
        self,
        primary: Callable[[], AsyncIterator[T]],
        fallback: Callable[[], AsyncIterator[T]],
    ) -> AsyncIterator[T]:
        """The primary's stream; the fallback's when the primary fails retryably before any
        of its output was handed on (after that, the listener already has part of it)."""
        if self.breaker.allow():
            sent = False
            try:
                async with _closing(primary()) as items:
                    async for item in items:
                        sent = True
                        yield item
            except ProviderError as e:
                if sent:
                    self._after_output(e)
                    raise
                if not self._falls_back(e):
                    raise
            except BaseException:
                self.breaker.abandoned()
                raise
            else:
                self.breaker.succeeded()
                self._served("primary")
                return
        async with _closing(fallback()) as items:
            async for item in items:
                yield item
        self._served("fallback")


class FallbackChatModel(_StreamingFallback[ChatModelProtocol]):
    stage = "llm"

    def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        return self._stream(
            lambda: self.primary.stream(messages), lambda: self.fallback.stream(messages)
        )


class FallbackTextToSpeech(_StreamingFallback[TextToSpeech]):
    stage = "tts"

    def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[Audio]:
        # Voices are named per provider: another provider gets its own default.
        fallback_voice = voice if self.fallback.name == self.primary.name else None
        return self._stream(
            lambda: self.primary.synthesize(text, voice=voice),
            lambda: self.fallback.synthesize(text, voice=fallback_voice),
        )
