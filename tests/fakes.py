"""Scripted in-process fakes of the provider Protocols: fixed outputs, delays and failures,
and a shared timeline of what was called when."""

from __future__ import annotations

import asyncio
import io
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf

from voice_orchestrator.audio import Audio
from voice_orchestrator.providers.base import (
    ChatMessage,
    ProviderHealth,
    Providers,
    ToolCall,
    Transcript,
)
from voice_orchestrator.tools.base import ToolResult


@dataclass
class Timeline:
    """(seconds since creation, label) pairs, appended by every fake that shares it."""

    start: float = field(default_factory=time.perf_counter)
    entries: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, label: str) -> None:
        self.entries.append((time.perf_counter() - self.start, label))

    def at(self, label: str) -> float:
        return next(t for t, name in self.entries if name == label)

    def labels(self) -> list[str]:
        return [name for _, name in self.entries]


def tone(seconds: float, rate: int, freq: float = 220.0) -> Audio:
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    return Audio.from_float32(0.3 * np.sin(2 * math.pi * freq * t), rate)


def make_wav(
    seconds: float = 1.0,
    rate: int = 16_000,
    channels: int = 1,
    subtype: str = "PCM_16",
    fmt: str = "WAV",
) -> bytes:
    """A tone encoded by libsndfile in the given container and sample format."""
    frames = int(seconds * rate)
    t = np.arange(frames, dtype=np.float64) / rate
    mono = 0.3 * np.sin(2 * math.pi * 440 * t)
    data = np.stack([mono] * channels, axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, subtype=subtype, format=fmt)
    return buffer.getvalue()


class _Fake:
    model = "fake-model"

    def __init__(self, name: str) -> None:
        self.name = name
        self.health_result = ProviderHealth("healthy", 1.0)
        self.health_delay_s = 0.0
        self.health_calls = 0
        self.closed = False

    async def health(self) -> ProviderHealth:
        self.health_calls += 1
        await asyncio.sleep(self.health_delay_s)
        return self.health_result

    async def aclose(self) -> None:
        self.closed = True


class FakeSTT(_Fake):
    def __init__(
        self,
        text: str = "What is the capital of France?",
        *,
        delay_s: float = 0.0,
        error: Exception | None = None,
        timeline: Timeline | None = None,
    ) -> None:
        super().__init__("fake-stt")
        self.text = text
        self.delay_s = delay_s
        self.error = error
        self.timeline = timeline or Timeline()
        self.sample_rate = 16_000
        self.calls: list[Audio] = []
        self.cancelled = False

    async def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        self.calls.append(audio)
        self.timeline.mark("stt.start")
        try:
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        self.timeline.mark("stt.end")
        return Transcript(self.text, language)


class FakeLLM(_Fake):
    """Yields ``tokens`` after ``first_token_s``, then one every ``token_s``; raises ``error``
    after ``fail_after`` tokens when both are set. Token i is due ``first_token_s + i *
    token_s`` after the call, so the timer's overshoot does not add up over a reply."""

    def __init__(
        self,
        tokens: Sequence[str] = ("The capital ", "of France ", "is Paris. ", "It is big."),
        *,
        first_token_s: float = 0.0,
        token_s: float = 0.0,
        error: Exception | None = None,
        fail_after: int = 0,
        timeline: Timeline | None = None,
    ) -> None:
        super().__init__("fake-llm")
        self.tokens = list(tokens)
        self.first_token_s = first_token_s
        self.token_s = token_s
        self.error = error
        self.fail_after = fail_after
        self.timeline = timeline or Timeline()
        self.calls: list[list[ChatMessage]] = []
        self.stream_closed = False
        self.tokens_sent = 0

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        self.calls.append(list(messages))
        self.timeline.mark("llm.start")
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            for i, token in enumerate(self.tokens):
                due = start + self.first_token_s + i * self.token_s
                await asyncio.sleep(max(0.0, due - loop.time()))
                if self.error is not None and i == self.fail_after:
                    raise self.error
                self.tokens_sent += 1
                self.timeline.mark(f"llm.token.{i}")
                yield token
            if self.error is not None and self.fail_after >= len(self.tokens):
                raise self.error
            self.timeline.mark("llm.end")
        finally:
            self.stream_closed = True


class FakeTTS(_Fake):
    """Speaks each text as a tone of ``seconds_per_char`` per character after ``delay_s``."""

    def __init__(
        self,
        *,
        sample_rate: int = 22_050,
        delay_s: float = 0.0,
        seconds_per_char: float = 0.01,
        error: Exception | None = None,
        timeline: Timeline | None = None,
    ) -> None:
        super().__init__("fake-tts")
        self.sample_rate = sample_rate
        self.delay_s = delay_s
        self.seconds_per_char = seconds_per_char
        self.error = error
        self.timeline = timeline or Timeline()
        self.calls: list[tuple[str, str | None]] = []

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[Audio]:
        index = len(self.calls)
        self.calls.append((text, voice))
        self.timeline.mark(f"tts.start.{index}")
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        self.timeline.mark(f"tts.end.{index}")
        yield tone(max(0.05, len(text) * self.seconds_per_char), self.sample_rate)


def fake_providers(
    stt: FakeSTT | None = None, llm: FakeLLM | None = None, tts: FakeTTS | None = None
) -> Providers:
    timeline = Timeline()
    return Providers(
        stt=stt or FakeSTT(timeline=timeline),
        llm=llm or FakeLLM(timeline=timeline),
        tts=tts or FakeTTS(timeline=timeline),
    )


class FakeToolLLM(FakeLLM):
    """A model that calls tools: ``rounds[i]`` is what it says in round i, text deltas and
    ToolCalls (streamed after the text, as an OpenAI-compatible server sends them). Past the
    script, or when offered no tools, it answers with ``tokens``."""

    def __init__(self, rounds: Sequence[Sequence[str | ToolCall]], **kw: Any) -> None:
        super().__init__(**kw)
        self.rounds = [list(r) for r in rounds]
        self.offered: list[list[str]] = []  # tool names offered per call

    async def stream_with_tools(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, Any]]
    ) -> AsyncIterator[str | ToolCall]:
        self.offered.append([t["function"]["name"] for t in tools])
        index = len(self.offered) - 1
        if index >= len(self.rounds):
            async for token in self.stream(messages):
                yield token
            return
        self.calls.append(list(messages))
        for item in self.rounds[index]:
            yield item


class FakeToolbox:
    """Tools by name: each answers ``results[name]`` after ``delays[name]`` seconds (or fails
    when the result is an exception). Records starts and ends on ``timeline``."""

    def __init__(
        self,
        results: Mapping[str, str | Exception],
        *,
        delays: Mapping[str, float] | None = None,
        timeline: Timeline | None = None,
    ) -> None:
        self.results = dict(results)
        self.delays = dict(delays or {})
        self.timeline = timeline or Timeline()
        self.cancelled: list[str] = []
        self.arguments: list[tuple[str, str]] = []

    def definitions(self) -> list[dict[str, Any]]:
        return [
            {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
            for name in self.results
        ]

    async def call(self, name: str, arguments_json: str) -> ToolResult:
        self.arguments.append((name, arguments_json))
        self.timeline.mark(f"tool.start.{name}")
        try:
            await asyncio.sleep(self.delays.get(name, 0.0))
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        self.timeline.mark(f"tool.end.{name}")
        result = self.results[name]
        if isinstance(result, Exception):
            return ToolResult(False, f"error: {result}", 1.0)
        return ToolResult(True, result, 1.0)
