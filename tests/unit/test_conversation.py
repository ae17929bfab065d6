"""The conversation core on scripted fakes: turns, barge-in (pause, cancel, resume), what the
listener heard, carry-over and redaction. Frames are classified by a script, as in test_vad."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from voice_orchestrator.health import RecentOutcomes
from voice_orchestrator.metrics import Metrics
from voice_orchestrator.pipeline import events as ev
from voice_orchestrator.pipeline.admission import Slots
from voice_orchestrator.pipeline.conversation import Conversation, ConversationOptions
from voice_orchestrator.pipeline.dialogue import StageTimeouts
from voice_orchestrator.pipeline.sessions import MemorySessionStore, Turn
from voice_orchestrator.pipeline.telemetry import TurnTelemetry
from voice_orchestrator.pipeline.turns import SessionRef, TurnPolicy, Turns
from voice_orchestrator.pipeline.vad import FRAME_BYTES
from voice_orchestrator.providers.base import Providers

from ..conftest import HANG_S
from ..fakes import FakeLLM, FakeSTT, FakeTTS, fake_providers

SESSION = SessionRef("", "core-test")


class Scripted:
    """Classifies each frame by its first byte: 1 is speech, 0 is not."""

    def is_speech(self, frame: bytes) -> bool:
        return frame[0] == 1


def frames(pattern: str) -> bytes:
    """'S' a speech frame, '.' a silent one (20 ms each)."""
    return b"".join(bytes([1 if c == "S" else 0]) * FRAME_BYTES for c in pattern)


# Speech confirmed after 5 frames, over after 10 silent ones.
UTTERANCE = frames("S" * 40 + "." * 12)


@dataclass
class Recorder:
    """The sink: keeps every event and wakes waiters when one matches."""

    events: list[ev.ConversationEvent] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def __call__(self, event: ev.ConversationEvent) -> None:
        async with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[list[ev.ConversationEvent]], bool]
    ) -> list[ev.ConversationEvent]:
        async with asyncio.timeout(HANG_S), self.changed:
            await self.changed.wait_for(lambda: predicate(self.events))
        return self.events

    async def until(self, kind: type) -> ev.ConversationEvent:
        events = await self.wait_for(lambda evs: any(isinstance(e, kind) for e in evs))
        return next(e for e in events if isinstance(e, kind))

    def of(self, kind: type) -> list[ev.ConversationEvent]:
        return [e for e in self.events if isinstance(e, kind)]

    def names(self) -> list[str]:
        out: list[str] = []
        for e in self.events:
            name = type(e).__name__
            if not (out and out[-1] == name and name in ("AudioFrame", "TextDelta")):
                out.append(name)
        return out


def audio_frames(events: list[ev.ConversationEvent]) -> int:
    return sum(isinstance(e, ev.AudioFrame) for e in events)


@asynccontextmanager
async def conversation(
    providers: Providers | None = None, *, lead_ms: int = 60_000, redact: bool = True
) -> AsyncIterator[tuple[Conversation, Recorder, MemorySessionStore]]:
    store = MemorySessionStore(max_turns=10, ttl_s=60, max_sessions=10)
    turns = Turns(
        providers or fake_providers(),
        Slots(5, 0),
        store,
        TurnTelemetry(Metrics(), RecentOutcomes()),
        TurnPolicy("Be brief.", StageTimeouts(), redact=redact),
    )
    sink = Recorder()
    options = ConversationOptions(
        playback_lead_ms=lead_ms, vad_start_ms=100, vad_silence_ms=200, min_audio_s=0.1
    )
    core = Conversation(turns, SESSION, sink, options, classifier=Scripted())
    try:
        yield core, sink, store
    finally:
        await core.close()


async def test_a_turn_sends_its_events_in_order_and_history_keeps_the_answer() -> None:
    async with conversation() as (core, sink, store):
        await core.push_audio(UTTERANCE)
        done = await sink.until(ev.ResponseDone)
    assert sink.names() == [
        "SpeechStarted",
        "SpeechStopped",
        "ResponseStarted",
        "TranscriptFinal",
        "TextDelta",
        "AudioStarted",
        "AudioFrame",
        "SentenceSent",
        "AudioFrame",
        "SentenceSent",
        "AudioDone",
        "ResponseDone",
    ]
    assert isinstance(done, ev.ResponseDone)
    assert not done.interrupted
    assert done.text == "The capital of France is Paris. It is big."
    assert await store.history(SESSION.key) == [Turn("What is the capital of France?", done.text)]


async def paused_mid_answer(core: Conversation, sink: Recorder) -> None:
    """Starts a turn with a long answer and waits until some of its audio was sent."""
    await core.push_audio(UTTERANCE)
    await sink.wait_for(lambda evs: audio_frames(evs) >= 5)


def long_answer() -> Providers:
    llm = FakeLLM(("One two three four. ", "Five six seven eight."))
    return fake_providers(llm=llm, tts=FakeTTS(seconds_per_char=0.05))


async def test_barge_in_pauses_at_the_onset_then_cancels_once_speech_is_confirmed() -> None:
    async with conversation(long_answer(), lead_ms=0) as (core, sink, store):
        await paused_mid_answer(core, sink)
        await core.push_audio(frames("SS"))  # an onset: two voiced frames
        paused_at = sink.events.index(await sink.until(ev.AudioPaused))
        await core.push_audio(frames("SSS"))  # confirmed speech
        interrupted_at = sink.events.index(await sink.until(ev.Interrupted))
        done = await sink.until(ev.ResponseDone)
        # The listener hears at most the frame that was already on its way.
        assert audio_frames(sink.events[paused_at:interrupted_at]) <= 1
        assert audio_frames(sink.events[interrupted_at:]) == 0
        assert isinstance(done, ev.ResponseDone)
        assert done.interrupted
        sent_ms = 20 * audio_frames(sink.events)
        # 19 characters of the first sentence at 50 ms each: its words, in proportion.
        words = ["One", "two", "three", "four."]
        expected = " ".join(words[: -(-len(words) * sent_ms // (19 * 50))])
        assert done.text == expected
        history = await store.history(SESSION.key)
        assert history == [Turn("What is the capital of France?", expected, interrupted=True)]


async def test_a_cough_pauses_the_answer_which_then_resumes_where_it_paused() -> None:
    async with conversation(long_answer(), lead_ms=0) as (core, sink, _):
        await paused_mid_answer(core, sink)
        await core.push_audio(frames("SS"))
        await sink.until(ev.AudioPaused)
        frames_at_pause = audio_frames(sink.events)
        await core.push_audio(frames("." * 6))  # not yet dismissed: nothing is sent
        assert audio_frames(sink.events) <= frames_at_pause + 1
        await core.push_audio(frames("."))
        await sink.until(ev.AudioResumed)
        done = await sink.until(ev.ResponseDone)
    assert isinstance(done, ev.ResponseDone)
    assert not done.interrupted
    pcm = b"".join(e.pcm for e in sink.of(ev.AudioFrame))  # type: ignore[attr-defined]
    assert len(pcm) / 2 / 22_050 == pytest.approx((19 + 21) * 0.05, abs=0.001)


async def test_a_complete_answer_is_kept_whole_whatever_the_marks_say() -> None:
    async with conversation(long_answer(), lead_ms=60_000) as (core, sink, store):
        await core.push_audio(UTTERANCE)
        await sink.until(ev.AudioDone)  # all sent at once (a long lead), none played yet
        started = sink.of(ev.ResponseStarted)[0]
        assert isinstance(started, ev.ResponseStarted)
        # The listener has played the first sentence (19 chars x 50 ms) and a bit more.
        core.played(started.turn_id, 19 * 50 + 100)
        core.played(started.turn_id, 500)  # an older report does not move it back
    # The answer was complete when the conversation closed: kept whole.
    history = await store.history(SESSION.key)
    assert history[0].assistant == "One two three four. Five six seven eight."


async def test_a_cancel_keeps_the_words_up_to_the_mark_not_what_was_sent() -> None:
    # The second sentence comes long after the first has been sent whole.
    llm = FakeLLM(("One two three four. ", "Five six seven eight."), token_s=60)
    providers = fake_providers(llm=llm, tts=FakeTTS(seconds_per_char=0.05))
    async with conversation(providers, lead_ms=60_000) as (core, sink, store):
        await core.push_audio(UTTERANCE)
        # Its whole frames (the short last one waits to know that the sentence is over).
        first_sentence_frames = 19 * 50 // 20
        await sink.wait_for(lambda evs: audio_frames(evs) >= first_sentence_frames)
        started = sink.of(ev.ResponseStarted)[0]
        assert isinstance(started, ev.ResponseStarted)
        core.played(started.turn_id, 19 * 50 * 0.4)  # 40 % of the first sentence heard
        await core.cancel()
        done = await sink.until(ev.ResponseDone)
    assert isinstance(done, ev.ResponseDone)
    assert done.interrupted
    assert done.text == "One two"
    assert (await store.history(SESSION.key))[0].assistant == "One two"


async def test_an_utterance_cut_before_its_answer_began_is_carried_into_the_next() -> None:
    stt = FakeSTT()
    slow = fake_providers(stt=stt, llm=FakeLLM(first_token_s=30))
    async with conversation(slow) as (core, sink, store):
        await core.push_audio(UTTERANCE)
        await sink.until(ev.TranscriptFinal)
        await core.push_audio(frames("S" * 20))  # the listener goes on speaking
        done = await sink.until(ev.ResponseDone)
        assert isinstance(done, ev.ResponseDone)
        assert done.interrupted
        assert done.text == ""
        first_len = stt.calls[-1].duration_s
        await core.push_audio(frames("S" * 10 + "." * 12))
        await sink.wait_for(
            lambda evs: len([e for e in evs if isinstance(e, ev.TranscriptFinal)]) == 2
        )
        # One question: the second transcription heard both parts.
        assert stt.calls[-1].duration_s > first_len + 0.5
        assert await store.history(SESSION.key) == []


async def test_no_run_of_twelve_digits_reaches_the_listener_in_any_text() -> None:
    llm = FakeLLM(("Your card 4111 ", "1111 1111 ", "1111 is noted. ", "Thanks."))
    stt = FakeSTT("my number is 5500 0000 0000 0004")
    async with conversation(fake_providers(stt=stt, llm=llm)) as (core, sink, store):
        await core.push_audio(UTTERANCE)
        done = await sink.until(ev.ResponseDone)
    texts = [getattr(e, "text", "") for e in sink.events]
    for text in [*texts, "".join(e.text for e in sink.of(ev.TextDelta))]:  # type: ignore[attr-defined]
        assert not re.search(r"\d[\d -]{10,}\d", text), text
    assert isinstance(done, ev.ResponseDone)
    assert "[redacted]" in done.text
    stored = (await store.history(SESSION.key))[0]
    assert "[redacted]" in stored.user
    assert "[redacted]" in stored.assistant


async def test_a_greeting_is_spoken_without_the_language_model_and_not_stored() -> None:
    llm = FakeLLM()
    async with conversation(fake_providers(llm=llm)) as (core, sink, store):
        await core.say("Hello! How can I help you?")
        done = await sink.until(ev.ResponseDone)
    assert isinstance(done, ev.ResponseDone)
    assert done.text == "Hello! How can I help you?"
    assert audio_frames(sink.events) > 0
    assert llm.calls == []
    assert await store.history(SESSION.key) == []


async def test_text_input_answers_without_transcribing() -> None:
    stt = FakeSTT()
    async with conversation(fake_providers(stt=stt)) as (core, sink, store):
        await core.respond(text="Hi there")
        await sink.until(ev.ResponseDone)
    assert stt.calls == []
    assert (await store.history(SESSION.key))[0].user == "Hi there"


async def test_a_failing_stage_becomes_an_error_event_and_the_conversation_goes_on() -> None:
    from voice_orchestrator.errors import ProviderUnavailable

    llm = FakeLLM(error=ProviderUnavailable("llm", "down"))
    async with conversation(fake_providers(llm=llm)) as (core, sink, _):
        await core.push_audio(UTTERANCE)
        error = await sink.until(ev.ErrorRaised)
        assert isinstance(error, ev.ErrorRaised)
        assert error.error.code == "LLM_SERVICE_UNAVAILABLE"
        llm.error = None
        await core.push_audio(UTTERANCE)
        done = await sink.until(ev.ResponseDone)
    assert isinstance(done, ev.ResponseDone)
    assert not done.interrupted
