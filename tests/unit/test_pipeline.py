"""A turn's order, overlap, timings, errors and cancellation, on recorded call times."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from voice_orchestrator.audio import Audio
from voice_orchestrator.errors import ProviderUnavailable, SpeechNotRecognized
from voice_orchestrator.pipeline.dialogue import (
    AudioChunk,
    DialogueTurn,
    StageTimeouts,
    TextDelta,
    TranscriptReady,
    TurnDone,
    TurnEvent,
)
from voice_orchestrator.providers.base import ChatMessage

from ..conftest import HANG_S
from ..fakes import FakeLLM, FakeSTT, FakeTTS, Timeline, fake_providers, tone


def turn_with(
    stt: FakeSTT | None = None,
    llm: FakeLLM | None = None,
    tts: FakeTTS | None = None,
    **kw: object,
) -> DialogueTurn:
    return DialogueTurn(
        providers=fake_providers(stt, llm, tts),
        audio=tone(1.0, 16_000),
        context=[ChatMessage("system", "Be brief.")],
        started_at=time.perf_counter(),
        **kw,  # type: ignore[arg-type]
    )


async def collect(turn: DialogueTurn) -> list[TurnEvent]:
    return [event async for event in turn.events()]


async def test_event_order_and_result() -> None:
    llm = FakeLLM(["Paris is ", "the capital. ", "It is ", "lovely."])
    tts = FakeTTS()
    events = await collect(turn_with(llm=llm, tts=tts))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "TranscriptReady"
    assert kinds[-1] == "TurnDone"
    assert [e.text for e in events if isinstance(e, TextDelta)] == llm.tokens
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert [c.sentence for c in chunks] == ["Paris is the capital.", "It is lovely."]
    assert [c.sentence_index for c in chunks] == [0, 1]
    assert [text for text, _ in tts.calls] == ["Paris is the capital.", "It is lovely."]
    done = events[-1]
    assert isinstance(done, TurnDone)
    assert done.response_text == "Paris is the capital. It is lovely."
    assert done.transcript == "What is the capital of France?"
    assert done.sample_rate == 22_050
    # The model sees the context, then the user's words.
    assert [m.role for m in llm.calls[0]] == ["system", "user"]
    assert llm.calls[0][1].content == "What is the capital of France?"


class HeldLLM(FakeLLM):
    """Says its first sentence, then waits for ``release`` before the rest."""

    def __init__(self, tokens: list[str], **kw: Any) -> None:
        super().__init__(tokens, **kw)
        self.release = asyncio.Event()

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        self.calls.append(list(messages))
        self.timeline.mark("llm.start")
        try:
            for i, token in enumerate(self.tokens):
                if i == 1:
                    await self.release.wait()
                self.tokens_sent += 1
                self.timeline.mark(f"llm.token.{i}")
                yield token
            self.timeline.mark("llm.end")
        finally:
            self.stream_closed = True


class ReleasingTTS(FakeTTS):
    """Releases the held model when it starts speaking: the turn only ends if the first
    sentence is synthesized while the model is still writing."""

    def __init__(self, llm: HeldLLM, **kw: Any) -> None:
        super().__init__(**kw)
        self._llm = llm

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[Audio]:
        self._llm.release.set()
        async for chunk in super().synthesize(text, voice=voice):
            yield chunk


async def test_tts_of_a_sentence_overlaps_the_rest_of_the_reply() -> None:
    timeline = Timeline()
    llm = HeldLLM(["One two. ", "Three ", "four. ", "Five."], timeline=timeline)
    tts = ReleasingTTS(llm, timeline=timeline)
    async with asyncio.timeout(HANG_S):
        events = await collect(turn_with(FakeSTT(timeline=timeline), llm, tts))
    assert isinstance(events[-1], TurnDone)
    labels = timeline.labels()
    # Sentence 0 is synthesized before the model has written sentence 1.
    assert labels.index("tts.start.0") < labels.index("llm.token.1")
    assert labels.index("stt.end") < labels.index("llm.start")


async def test_timings_follow_the_stages() -> None:
    stt = FakeSTT(delay_s=0.05)
    llm = FakeLLM(["Hello there. ", "Bye."], first_token_s=0.05, token_s=0.05)
    tts = FakeTTS(delay_s=0.03)
    turn = turn_with(stt, llm, tts)
    await collect(turn)
    t = turn.timings
    assert t.stt_ms is not None
    assert t.stt_ms >= 50
    assert t.llm_first_token_ms is not None
    assert t.llm_first_token_ms >= 50
    assert t.llm_ms is not None
    assert t.llm_ms >= 100
    assert t.tts_first_audio_ms is not None
    assert t.tts_first_audio_ms >= 30
    assert t.first_audio_ms is not None
    assert t.total_ms is not None
    assert t.tts_ms is not None
    # First audio: STT, then the first sentence, then its synthesis.
    assert t.first_audio_ms >= 50 + 50 + 30
    assert t.first_audio_ms < t.total_ms
    # Stages overlap, so the total stays under their sum.
    assert t.total_ms < t.stt_ms + t.llm_ms + t.tts_ms
    assert set(t.as_dict()) == {
        "stt_ms", "llm_first_token_ms", "llm_ms", "tts_first_audio_ms", "tts_ms",
        "first_audio_ms", "total_ms",
    }  # fmt: skip


async def test_audio_of_other_rates_is_resampled_to_the_first() -> None:
    class TwoRates(FakeTTS):
        async def synthesize(self, text: str, *, voice: str | None = None):  # type: ignore[override]
            rate = 22_050 if not self.calls else 16_000
            self.calls.append((text, voice))
            yield tone(0.5, rate)

    events = await collect(turn_with(tts=TwoRates()))
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert {c.audio.sample_rate for c in chunks} == {22_050}
    assert chunks[1].audio.duration_s == pytest.approx(0.5, abs=1e-3)


async def test_voice_and_language_reach_the_providers() -> None:
    tts = FakeTTS()
    events = await collect(turn_with(tts=tts, voice="joe", language="en"))
    ready = events[0]
    assert isinstance(ready, TranscriptReady)
    assert ready.language == "en"
    assert {voice for _, voice in tts.calls} == {"joe"}


async def test_empty_transcript_is_no_speech() -> None:
    with pytest.raises(SpeechNotRecognized):
        await collect(turn_with(FakeSTT("")))


async def test_llm_failure_mid_reply_stops_tts_and_surfaces() -> None:
    llm = FakeLLM(
        ["First. ", "Second ", "third."],
        token_s=0.02,
        error=ProviderUnavailable("llm", "gone"),
        fail_after=2,
    )
    tts = FakeTTS(delay_s=0.01)
    events: list[TurnEvent] = []
    with pytest.raises(ProviderUnavailable):
        async for event in turn_with(llm=llm, tts=tts).events():
            events.append(event)
    assert not any(isinstance(e, TurnDone) for e in events)
    assert llm.stream_closed


async def test_stage_timeouts() -> None:
    llm = FakeLLM(["Slow."], first_token_s=5)
    turn = turn_with(llm=llm, timeouts=StageTimeouts(llm_s=0.05))
    with pytest.raises(Exception, match="did not finish in time") as info:
        await collect(turn)
    assert getattr(info.value, "code", None) == "LLM_TIMEOUT"
    assert llm.stream_closed


async def test_closing_the_iterator_cancels_all_work() -> None:
    llm = HeldLLM(["One. ", *["more "] * 100])  # never released: the reply is under way
    tts = FakeTTS()
    turn = turn_with(llm=llm, tts=tts)
    events = turn.events()
    async with asyncio.timeout(HANG_S):
        async for event in events:
            if isinstance(event, AudioChunk):
                break
    await events.aclose()  # type: ignore[attr-defined]
    assert llm.stream_closed
    assert llm.tokens_sent == 1


async def test_cancelling_the_consumer_cancels_the_stt() -> None:
    stt = FakeSTT(delay_s=5)
    task = asyncio.create_task(collect(turn_with(stt)))
    while not stt.calls:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stt.cancelled
