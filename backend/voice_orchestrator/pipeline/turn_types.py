"""The value types of a turn: its stage timeouts and timings, the events it yields, and a
transcription started before the turn was certain to be over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from ..audio import Audio
from ..providers.base import Transcript
from .tool_loop import ClientToolCall, ToolCallEnded, ToolCallStarted, ToolExchange


@dataclass(frozen=True, slots=True)
class StageTimeouts:
    """Seconds each stage may take: STT per utterance, LLM per reply, TTS per sentence."""

    stt_s: float = 30.0
    llm_s: float = 30.0
    tts_s: float = 30.0


@dataclass(slots=True)
class TurnTimings:
    """Milliseconds. Stage times run from a stage's first call to its last byte, so they may
    overlap; first audio and total count from when the request was received."""

    stt_ms: float | None = None
    llm_first_token_ms: float | None = None
    llm_ms: float | None = None
    tts_first_audio_ms: float | None = None
    tts_ms: float | None = None
    tools_ms: float | None = None
    first_audio_ms: float | None = None
    total_ms: float | None = None

    def as_dict(self, *, digits: int | None = 1) -> dict[str, float]:
        return {
            name: value if digits is None else round(value, digits)
            for name in self.__slots__
            if (value := getattr(self, name)) is not None
        }


@dataclass(frozen=True, slots=True)
class TranscriptReady:
    text: str
    language: str | None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Speech of one sentence (or part of it); ``sentence`` is the text it speaks."""

    audio: Audio
    sentence: str
    sentence_index: int


@dataclass(frozen=True, slots=True)
class TurnDone:
    transcript: str
    response_text: str
    sample_rate: int
    timings: TurnTimings
    tools: tuple[ToolExchange, ...] = ()


TurnEvent = (
    TranscriptReady
    | TextDelta
    | AudioChunk
    | ToolCallStarted
    | ToolCallEnded
    | ClientToolCall
    | TurnDone
)


@dataclass(slots=True)
class EarlyTranscription:
    """A transcription started before the turn (on a pause in speech, before the end of the
    turn was certain), with when it started and finished (``time.perf_counter()``)."""

    task: asyncio.Task[Transcript]
    started_at: float
    finished_at: float | None = None

    @classmethod
    def start(cls, transcription: Coroutine[Any, Any, Transcript]) -> EarlyTranscription:
        early = cls(asyncio.create_task(transcription), time.perf_counter())
        early.task.add_done_callback(early._finished)
        return early

    def _finished(self, _task: asyncio.Task[Transcript]) -> None:
        self.finished_at = time.perf_counter()
