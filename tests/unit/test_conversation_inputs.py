"""The conversation core's inputs that message-based protocols (the OpenAI Realtime socket) need:
commits that wait for respond(), whole utterances given at once, new options mid-conversation,
text-only responses, and truncation of an answer while it plays and after it ended."""

from __future__ import annotations

import asyncio

import pytest

from voice_orchestrator.audio import Audio
from voice_orchestrator.health import RecentOutcomes
from voice_orchestrator.metrics import Metrics
from voice_orchestrator.pipeline import events as ev
from voice_orchestrator.pipeline.admission import Slots
from voice_orchestrator.pipeline.conversation import Conversation, ConversationOptions
from voice_orchestrator.pipeline.dialogue import DialogueTurn, StageTimeouts
from voice_orchestrator.pipeline.sessions import MemorySessionStore, Turn
from voice_orchestrator.pipeline.telemetry import TurnTelemetry
from voice_orchestrator.pipeline.turns import SessionRef, TurnPolicy, Turns
from voice_orchestrator.providers.base import Providers

from ..conftest import HANG_S
from ..fakes import FakeLLM, FakeSTT, FakeTTS, fake_providers, tone

REPLY = "The capital of France is Paris. It is big."


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.ConversationEvent] = []
        self.first_sentence_sent = asyncio.Event()

    async def __call__(self, event: ev.ConversationEvent) -> None:
        self.events.append(event)
        if isinstance(event, ev.SentenceSent) and event.index == 0:
            self.first_sentence_sent.set()

    def of(self, kind: type) -> list[ev.ConversationEvent]:
        return [event for event in self.events if isinstance(event, kind)]


def conversation(
    providers: Providers, options: ConversationOptions | None = None
) -> tuple[Conversation, Recorder, MemorySessionStore]:
    store = MemorySessionStore(max_turns=10, ttl_s=60, max_sessions=10)
    turns = Turns(
        providers,
        Slots(2, 0),
        store,
        TurnTelemetry(Metrics(), RecentOutcomes()),
        TurnPolicy(system_prompt="Be brief.", timeouts=StageTimeouts()),
    )
    recorder = Recorder()
    options = options or ConversationOptions(input_rate=24_000, server_vad=False)
    return Conversation(turns, SessionRef("", "s1"), recorder, options), recorder, store


async def test_memory_store_amends_the_last_turn() -> None:
    store = MemorySessionStore(max_turns=10, ttl_s=60, max_sessions=10)
    assert not await store.amend_last("k", Turn("q", "a"))
    await store.append("k", Turn("q1", "a1"))
    await store.append("k", Turn("q2", "a2"))
    assert await store.amend_last("k", Turn("q2", "a", interrupted=True))
    assert await store.history("k") == [Turn("q1", "a1"), Turn("q2", "a", interrupted=True)]


async def test_a_commit_without_respond_waits_for_respond() -> None:
    providers = fake_providers()
    talk, recorder, _ = conversation(providers)
    assert not await talk.commit(respond=False)  # nothing heard yet
    assert recorder.of(ev.ErrorRaised)
    await talk.push_audio(tone(1.0, 24_000).pcm)
    assert await talk.commit(respond=False)
    await talk.wait_idle()
    stt = providers.stt
    assert isinstance(stt, FakeSTT)
    assert stt.calls == []
    assert not recorder.of(ev.ResponseStarted)
    await talk.respond()
    await talk.wait_idle()
    # The streaming resampler keeps its last few milliseconds until more audio comes.
    assert [audio.duration_s for audio in stt.calls] == [pytest.approx(1.0, abs=0.1)]
    assert recorder.of(ev.ResponseDone)[0].text == REPLY  # type: ignore[attr-defined]
    await talk.close()


async def test_a_whole_utterance_given_at_once() -> None:
    providers = fake_providers()
    talk, _, _ = conversation(providers)
    await talk.hold(tone(0.8, 24_000).pcm)
    await talk.respond()
    await talk.wait_idle()
    stt = providers.stt
    assert isinstance(stt, FakeSTT)
    assert [(round(a.duration_s, 2), a.sample_rate) for a in stt.calls] == [(0.8, 16_000)]
    await talk.close()


async def test_reconfigure_changes_the_input_rate() -> None:
    providers = fake_providers()
    talk, _, _ = conversation(providers)
    talk.reconfigure(ConversationOptions(input_rate=8_000, server_vad=False, auto_respond=True))
    await talk.push_audio(tone(1.0, 8_000).pcm)
    assert await talk.commit()
    await talk.wait_idle()
    stt = providers.stt
    assert isinstance(stt, FakeSTT)
    assert [audio.duration_s for audio in stt.calls] == [pytest.approx(1.0, abs=0.1)]
    await talk.close()


async def test_text_only_responses_synthesize_nothing() -> None:
    providers = fake_providers()
    talk, recorder, store = conversation(providers)
    await talk.respond(text="Hi", speak=False)
    await talk.wait_idle()
    assert providers.tts.calls == []  # type: ignore[attr-defined]
    assert not recorder.of(ev.AudioFrame)
    assert "".join(e.text for e in recorder.of(ev.TextDelta)) == REPLY  # type: ignore[attr-defined]
    assert await store.history("s1") == [Turn("Hi", REPLY)]
    await talk.close()


async def test_dialogue_turn_without_speech() -> None:
    providers = fake_providers()
    turn = DialogueTurn(
        providers=providers,
        audio=Audio(b"", 16_000),
        context=[],
        started_at=0.0,
        text="Hi",
        speak=False,
    )
    events = [event async for event in turn.events()]
    assert providers.tts.calls == []  # type: ignore[attr-defined]
    assert events[-1].response_text == REPLY  # type: ignore[union-attr]


async def test_truncate_after_the_answer_amends_the_stored_turn() -> None:
    providers = fake_providers()
    talk, _, store = conversation(providers)
    turn_id = await talk.respond(text="Hi")
    await talk.wait_idle()
    assert await store.history("s1") == [Turn("Hi", REPLY)]
    # "The capital of France is Paris." is 0.31 s of speech; 150 ms of it hold three words.
    assert await talk.truncate(turn_id, 150) == "The capital of"
    assert await store.history("s1") == [Turn("Hi", "The capital of", interrupted=True)]
    assert await talk.truncate("another-turn", 150) is None
    await talk.close()


async def test_truncate_while_the_answer_plays() -> None:
    llm = FakeLLM(("The capital ", "of France ", "is Paris. ", "It is big."), token_s=0.3)
    providers = fake_providers(llm=llm, tts=FakeTTS())
    talk, recorder, store = conversation(providers)
    turn_id = await talk.respond(text="Hi")
    async with asyncio.timeout(HANG_S):
        await recorder.first_sentence_sent.wait()
    assert await talk.truncate(turn_id, 150) == "The capital of"
    await talk.wait_idle()
    done = recorder.of(ev.ResponseDone)[0]
    assert (done.text, done.interrupted) == ("The capital of", True)  # type: ignore[attr-defined]
    assert await store.history("s1") == [Turn("Hi", "The capital of", interrupted=True)]
    await talk.close()


@pytest.mark.parametrize("respond", [True, False])
async def test_commit_respond_overrides_the_option(respond: bool) -> None:
    providers = fake_providers()
    options = ConversationOptions(input_rate=24_000, server_vad=False, auto_respond=not respond)
    talk, recorder, _ = conversation(providers, options)
    await talk.push_audio(tone(1.0, 24_000).pcm)
    await talk.commit(respond=respond)
    await talk.wait_idle()
    assert bool(recorder.of(ev.ResponseStarted)) is respond
    await talk.close()
