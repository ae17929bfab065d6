"""The client's own tools in the conversation core, on scripted fakes: a call of one ends the
turn (nothing runs here), the follow-up with the client's output continues that turn in the
model's context and in the history, beside the tools that run here; a model that cannot call
tools answers without them."""

from __future__ import annotations

import asyncio

import pytest

from voice_orchestrator.audio import Audio
from voice_orchestrator.errors import InvalidRequest
from voice_orchestrator.health import RecentOutcomes
from voice_orchestrator.metrics import Metrics
from voice_orchestrator.pipeline import events as ev
from voice_orchestrator.pipeline.admission import Slots
from voice_orchestrator.pipeline.conversation import Conversation, ConversationOptions
from voice_orchestrator.pipeline.dialogue import StageTimeouts, TurnDone, TurnEvent
from voice_orchestrator.pipeline.follow_up import resumed_context, resumed_turn
from voice_orchestrator.pipeline.sessions import MemorySessionStore, Turn
from voice_orchestrator.pipeline.telemetry import TurnTelemetry
from voice_orchestrator.pipeline.tool_loop import (
    ClientToolCall,
    ToolExchange,
    offered_tools,
    split_calls,
)
from voice_orchestrator.pipeline.turns import SessionRef, TurnPolicy, Turns
from voice_orchestrator.providers.base import Providers, ToolCall

from ..fakes import FakeLLM, FakeToolbox, FakeToolLLM, fake_providers

SESSION = SessionRef("", "s1")
LOOKUP = ToolCall("call_1", "lookup", '{"order": "1234 5678 9012 3456"}')
WEATHER = ToolCall("call_2", "weather", '{"city": "Paris"}')
THEIRS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.ConversationEvent] = []

    async def __call__(self, event: ev.ConversationEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [type(event).__name__ for event in self.events]


def make_turns(
    providers: Providers, *, toolbox: FakeToolbox | None = None, redact: bool = True
) -> tuple[Turns, MemorySessionStore]:
    store = MemorySessionStore(max_turns=10, ttl_s=60, max_sessions=10)
    turns = Turns(
        providers,
        Slots(2, 0),
        store,
        TurnTelemetry(Metrics(), RecentOutcomes()),
        TurnPolicy("Be brief.", StageTimeouts(), redact=redact),
        tools=toolbox,
    )
    return turns, store


def conversation(providers: Providers) -> tuple[Conversation, Recorder, MemorySessionStore]:
    turns, store = make_turns(providers, redact=False)
    recorder = Recorder()
    options = ConversationOptions(input_rate=24_000, server_vad=False)
    talk = Conversation(turns, SESSION, recorder, options, client_tools=THEIRS)
    return talk, recorder, store


async def collect(events: object) -> list[TurnEvent]:
    return [event async for event in events]  # type: ignore[attr-defined]


def test_their_tools_shadow_ours_and_their_calls_are_split_off() -> None:
    ours = FakeToolbox({"lookup": "ours", "weather": "sunny"})
    names = [t["function"]["name"] for t in offered_tools(ours, THEIRS)]
    assert names == ["weather", "lookup"]
    assert offered_tools(None, None) == []
    assert split_calls([LOOKUP, WEATHER], ours, THEIRS) == ([WEATHER], [LOOKUP])
    assert split_calls([LOOKUP, WEATHER], None, THEIRS) == ([], [LOOKUP, WEATHER])
    assert split_calls([WEATHER], ours, None) == ([WEATHER], [])


def test_the_follow_up_context_ends_with_the_calls_and_the_results_known_before() -> None:
    pending = (
        ToolExchange("call_2", "weather", "{}", "sunny"),
        ToolExchange("call_1", "lookup", "{}", ""),
    )
    history = [Turn("Hi", "Hello."), Turn("Where is my order?", "Let me look.", tools=pending)]
    context = resumed_context("Be brief.", history, [("call_1", "shipped")])
    assert [(m.role, m.content) for m in context] == [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Hello."),
        ("user", "Where is my order?"),
        ("assistant", "Let me look."),
        ("tool", "sunny"),
    ]
    assert [c.id for c in context[4].tool_calls] == ["call_2", "call_1"]
    assert resumed_turn(history, [("call_1", "shipped")]).tools[1].result == "shipped"
    for outputs in ([("call_9", "x")], []):
        with pytest.raises(InvalidRequest):
            resumed_turn(history, outputs)
    with pytest.raises(InvalidRequest):
        resumed_turn([], [("call_1", "x")])


async def test_a_call_of_their_tool_ends_the_turn_and_runs_nothing_here() -> None:
    llm = FakeToolLLM([["Let me look. ", LOOKUP, WEATHER]], tokens=("Shipped.",))
    toolbox = FakeToolbox({"weather": "sunny"})
    turns, _ = make_turns(fake_providers(llm=llm), toolbox=toolbox)
    audio = Audio(bytes(32_000), 16_000)
    events = await collect(turns.run(SESSION, audio, started_at=0.0, client_tools=THEIRS))
    [requested] = [e for e in events if isinstance(e, ClientToolCall)]
    # Arguments leave redacted like every other text.
    assert requested.call == ToolCall("call_1", "lookup", '{"order": "[redacted]"}')
    assert toolbox.arguments == [("weather", '{"city": "Paris"}')]  # ours ran
    assert llm.offered == [["weather", "lookup"]]  # and the model was not asked again
    done = events[-1]
    assert isinstance(done, TurnDone)
    assert done.response_text == "Let me look."
    assert [(t.call_id, t.result) for t in done.tools] == [("call_2", "sunny"), ("call_1", "")]


async def test_nothing_said_before_their_call_is_no_failure() -> None:
    llm = FakeToolLLM([[LOOKUP]])
    turns, _ = make_turns(fake_providers(llm=llm))
    audio = Audio(bytes(32_000), 16_000)
    events = await collect(turns.run(SESSION, audio, started_at=0.0, client_tools=THEIRS))
    done = events[-1]
    assert isinstance(done, TurnDone)
    assert (done.response_text, done.sample_rate) == ("", 0)


async def test_a_model_that_cannot_call_tools_is_not_offered_theirs() -> None:
    llm = FakeLLM()
    turns, _ = make_turns(fake_providers(llm=llm))
    assert not turns.client_tools_supported
    audio = Audio(bytes(32_000), 16_000)
    events = await collect(turns.run(SESSION, audio, started_at=0.0, client_tools=THEIRS))
    assert isinstance(events[-1], TurnDone)
    assert events[-1].response_text == "The capital of France is Paris. It is big."


async def test_the_follow_up_answers_with_their_output_and_continues_the_stored_turn() -> None:
    llm = FakeToolLLM([["Let me look. ", LOOKUP]], tokens=("It ", "shipped."))
    providers = fake_providers(llm=llm)
    talk, recorder, store = conversation(providers)
    first = await talk.respond(text="Where is my order?")
    await talk.wait_idle()
    kinds = recorder.kinds()
    # The call comes after the answer's audio, before its end.
    assert kinds.index("AudioDone") < kinds.index("ToolCallRequested") < kinds.index("ResponseDone")
    requested = [e for e in recorder.events if isinstance(e, ev.ToolCallRequested)]
    assert requested == [ev.ToolCallRequested(first, "call_1", "lookup", LOOKUP.arguments)]
    assert await store.history("s1") == [
        Turn("Where is my order?", "Let me look.", tools=(ToolExchange(*vars_of(LOOKUP), ""),))
    ]
    with pytest.raises(InvalidRequest):
        await talk.respond(tool_outputs=[("call_9", "lost")])
    second = await talk.respond(tool_outputs=[("call_1", "shipped")])
    await talk.wait_idle()

    assert providers.stt.calls == []  # type: ignore[attr-defined]
    context = llm.calls[-1]
    assert [(m.role, m.content) for m in context] == [
        ("system", "Be brief."),
        ("user", "Where is my order?"),
        ("assistant", "Let me look."),
        ("tool", "shipped"),
    ]
    done = [e for e in recorder.events if isinstance(e, ev.ResponseDone)][-1]
    assert (done.turn_id, done.transcript, done.text) == (second, "", "It shipped.")
    turn = Turn(
        "Where is my order?",
        "Let me look. It shipped.",
        tools=(ToolExchange(*vars_of(LOOKUP), "shipped"),),
    )
    assert await store.history("s1") == [turn]
    # Cut after the follow-up ended: the stored turn keeps what came before it.
    assert await talk.truncate(second, 20) == "It"
    cut = Turn("Where is my order?", "Let me look. It", True, tools=turn.tools)
    assert await store.history("s1") == [cut]
    await talk.close()


async def test_committed_audio_waits_while_the_follow_up_runs() -> None:
    llm = FakeToolLLM([[LOOKUP]], tokens=("Shipped.",))
    providers = fake_providers(llm=llm)
    talk, _, store = conversation(providers)
    await talk.respond(text="Where is my order?")
    await talk.wait_idle()
    await talk.hold(bytes(24_000 * 2))
    await talk.respond(tool_outputs=[("call_1", "shipped")])
    await talk.wait_idle()
    assert providers.stt.calls == []  # type: ignore[attr-defined]
    await talk.respond()
    async with asyncio.timeout(120):
        await talk.wait_idle()
    assert len(providers.stt.calls) == 1  # type: ignore[attr-defined]
    assert [t.user for t in await store.history("s1")] == [
        "Where is my order?",
        "What is the capital of France?",
    ]
    await talk.close()


def vars_of(call: ToolCall) -> tuple[str, str, str]:
    return call.id, call.name, call.arguments


async def test_their_output_reaches_the_model_whole_and_the_history_redacted() -> None:
    llm = FakeToolLLM([[LOOKUP]], tokens=("Done.",))
    turns, store = make_turns(fake_providers(llm=llm))
    talk = Conversation(turns, SESSION, Recorder(), client_tools=THEIRS)
    await talk.respond(text="Card?")
    await talk.wait_idle()
    await talk.respond(tool_outputs=[("call_1", "card 1234 5678 9012 3456")])
    await talk.wait_idle()
    assert llm.calls[-1][-1].content == "card 1234 5678 9012 3456"
    [turn] = await store.history("s1")
    assert turn.tools[0].result == "card [redacted]"
    await talk.close()
