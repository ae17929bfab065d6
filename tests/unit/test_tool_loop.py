"""Tool calls inside a turn, on scripted fakes: text before a call is spoken at once, the
filler when a call is slow, concurrent calls, error results, the round limit, cancellation,
and the history keeping the calls for a follow-up question."""

from __future__ import annotations

import asyncio

from voice_orchestrator.audio import Audio
from voice_orchestrator.health import RecentOutcomes
from voice_orchestrator.metrics import Metrics
from voice_orchestrator.pipeline.admission import Slots
from voice_orchestrator.pipeline.dialogue import StageTimeouts, TurnDone, TurnEvent
from voice_orchestrator.pipeline.sessions import MemorySessionStore
from voice_orchestrator.pipeline.telemetry import TurnTelemetry
from voice_orchestrator.pipeline.tool_loop import ToolCallEnded, ToolCallStarted, ToolPolicy
from voice_orchestrator.pipeline.turns import SessionRef, TurnPolicy, Turns
from voice_orchestrator.providers.base import ToolCall

from ..conftest import HANG_S
from ..fakes import FakeToolbox, FakeToolLLM, FakeTTS, Timeline, fake_providers

SESSION = SessionRef("", "tools")
WEATHER = ToolCall("call_1", "weather", '{"city": "Paris"}')
HOURS = ToolCall("call_2", "hours", '{"shop": "bakery"}')


def turns_with(
    llm: FakeToolLLM, toolbox: FakeToolbox, tts: FakeTTS | None = None, **policy: object
) -> tuple[Turns, MemorySessionStore]:
    store = MemorySessionStore(max_turns=10, ttl_s=60, max_sessions=10)
    turns = Turns(
        fake_providers(llm=llm, tts=tts),
        Slots(5, 0),
        store,
        TurnTelemetry(Metrics(), RecentOutcomes()),
        TurnPolicy("Be brief.", StageTimeouts(), redact=False),
        tools=toolbox,
        tool_policy=ToolPolicy(**policy),  # type: ignore[arg-type]
    )
    return turns, store


async def run(turns: Turns) -> list[TurnEvent]:
    events = turns.run(SESSION, Audio(bytes(32_000), 16_000), started_at=0.0)
    out = [event async for event in events]
    done = out[-1]
    assert isinstance(done, TurnDone)
    await turns.remember(SESSION, done.transcript, done.response_text, tools=done.tools)
    return out


async def test_the_result_goes_back_to_the_model_and_the_answer_is_built_on_it() -> None:
    llm = FakeToolLLM([["Let me check. ", WEATHER]], tokens=("It is sunny in Paris.",))
    toolbox = FakeToolbox({"weather": '{"sky": "sunny"}'})
    turns, store = turns_with(llm, toolbox)
    events = await run(turns)
    assert toolbox.arguments == [("weather", '{"city": "Paris"}')]
    second_prompt = llm.calls[-1]
    assert [m.role for m in second_prompt[-2:]] == ["assistant", "tool"]
    assert second_prompt[-2].tool_calls == (WEATHER,)
    assert second_prompt[-1].content == '{"sky": "sunny"}'
    assert second_prompt[-1].tool_call_id == "call_1"
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("ToolCallStarted") < kinds.index("ToolCallEnded")
    done = events[-1]
    assert isinstance(done, TurnDone)
    assert done.response_text == "Let me check. It is sunny in Paris."
    assert done.timings.tools_ms is not None
    # A follow-up question sees the call and its result.
    history = await store.history(SESSION.key)
    assert history[0].tools[0].result == '{"sky": "sunny"}'


async def test_text_before_a_call_is_spoken_before_the_call_and_a_slow_call_gets_the_filler() -> (
    None
):
    timeline = Timeline()
    tts = FakeTTS(timeline=timeline)
    llm = FakeToolLLM([["Let me check. ", WEATHER]], tokens=("Sunny.",))
    toolbox = FakeToolbox({"weather": "sunny"}, delays={"weather": 0.3}, timeline=timeline)
    turns, _ = turns_with(llm, toolbox, tts, filler="One moment.", filler_ms=50)
    await run(turns)
    spoken = [text for text, _ in tts.calls]
    assert spoken == ["Let me check.", "One moment.", "Sunny."]
    assert timeline.at("tts.start.0") < timeline.at("tool.end.weather")
    assert timeline.at("tts.start.1") < timeline.at("tool.end.weather")


async def test_a_fast_call_gets_no_filler() -> None:
    tts = FakeTTS()
    llm = FakeToolLLM([[WEATHER]], tokens=("Sunny.",))
    toolbox = FakeToolbox({"weather": "sunny"})
    turns, _ = turns_with(llm, toolbox, tts, filler_ms=60_000)
    await run(turns)
    assert [text for text, _ in tts.calls] == ["Sunny."]


async def test_the_calls_of_one_round_run_concurrently() -> None:
    timeline = Timeline()
    llm = FakeToolLLM([[WEATHER, HOURS]], tokens=("Done.",))
    toolbox = FakeToolbox(
        {"weather": "sunny", "hours": "9-17"}, delays={"weather": 0.2, "hours": 0.2},
        timeline=timeline,
    )  # fmt: skip
    turns, _ = turns_with(llm, toolbox, filler_ms=60_000)
    await run(turns)
    assert timeline.at("tool.start.hours") < timeline.at("tool.end.weather")
    assert timeline.at("tool.start.weather") < timeline.at("tool.end.hours")
    results = [m for m in llm.calls[-1] if m.role == "tool"]
    assert [m.tool_call_id for m in results] == ["call_1", "call_2"]


async def test_a_failed_call_is_an_error_result_and_the_turn_still_answers() -> None:
    llm = FakeToolLLM([[WEATHER]], tokens=("I could not look that up.",))
    toolbox = FakeToolbox({"weather": RuntimeError("upstream 500")})
    turns, _ = turns_with(llm, toolbox)
    events = await run(turns)
    ended = [e for e in events if isinstance(e, ToolCallEnded)]
    assert [e.ok for e in ended] == [False]
    assert llm.calls[-1][-1].content.startswith("error:")
    done = events[-1]
    assert isinstance(done, TurnDone)
    assert done.response_text == "I could not look that up."


async def test_after_the_last_round_the_model_is_offered_no_tools() -> None:
    llm = FakeToolLLM([[WEATHER], [WEATHER], [WEATHER]], tokens=("Enough.",))
    toolbox = FakeToolbox({"weather": "sunny"})
    turns, _ = turns_with(llm, toolbox, max_rounds=2)
    events = await run(turns)
    assert len(llm.offered) == 2  # two rounds with tools, then a plain reply
    assert sum(isinstance(e, ToolCallStarted) for e in events) == 2
    done = events[-1]
    assert isinstance(done, TurnDone)
    assert done.response_text == "Enough."


async def test_closing_the_turn_cancels_a_running_call() -> None:
    llm = FakeToolLLM([[WEATHER]])
    toolbox = FakeToolbox({"weather": "sunny"}, delays={"weather": 60})
    turns, _ = turns_with(llm, toolbox, filler_ms=60_000)
    events = turns.run(SESSION, Audio(bytes(32_000), 16_000), started_at=0.0)
    async with asyncio.timeout(HANG_S):
        async for event in events:
            if isinstance(event, ToolCallStarted):
                break
    await events.aclose()
    assert toolbox.cancelled == ["weather"]
