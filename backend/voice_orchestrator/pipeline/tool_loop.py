"""Tool calls inside a turn: the calls of one round run concurrently, a filler sentence is
spoken when they take longer than the filler delay, and every result (an error result when a
call failed or timed out) goes back to the model as a ``tool`` message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..providers.base import ChatMessage, ToolCall
from ..tools.base import ToolResult


class ToolRunner(Protocol):
    """What the turn needs of the tool box."""

    def definitions(self) -> list[dict[str, Any]]: ...

    async def call(self, name: str, arguments_json: str) -> ToolResult:
        """Never raises for a tool's failure: that is an error result."""
        ...


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    max_rounds: int = 3
    filler: str = "One moment."
    filler_ms: int = 700


@dataclass(frozen=True, slots=True)
class ToolExchange:
    """One call and its result, as the history keeps it for follow-up questions."""

    call_id: str
    name: str
    arguments: str
    result: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallEnded:
    call_id: str
    name: str
    ok: bool
    ms: float


ToolEvent = ToolCallStarted | ToolCallEnded


async def run_round(
    tools: ToolRunner,
    policy: ToolPolicy,
    calls: Sequence[ToolCall],
    emit: Callable[[ToolEvent], None],
    speak: Callable[[str], None],
) -> list[ToolExchange]:
    """Runs one round's calls concurrently; ``speak(filler)`` once if they outlast the filler
    delay. Cancelling this cancels the calls."""

    async def one(call: ToolCall) -> ToolResult:
        emit(ToolCallStarted(call.id, call.name))
        result = await tools.call(call.name, call.arguments)
        emit(ToolCallEnded(call.id, call.name, result.ok, result.ms))
        return result

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(call)) for call in calls]
        _, pending = await asyncio.wait(tasks, timeout=policy.filler_ms / 1000)
        if pending and policy.filler:
            speak(policy.filler)
    return [
        ToolExchange(call.id, call.name, call.arguments, task.result().content)
        for call, task in zip(calls, tasks, strict=True)
    ]


def round_messages(said: str, exchanges: Sequence[ToolExchange]) -> list[ChatMessage]:
    """The assistant's calls and their results, as the model is given them."""
    calls = tuple(ToolCall(e.call_id, e.name, e.arguments) for e in exchanges)
    return [
        ChatMessage("assistant", said, tool_calls=calls),
        *(ChatMessage("tool", e.result, tool_call_id=e.call_id) for e in exchanges),
    ]


class ToolClock:
    """Wall time spent in tool rounds, for the turn's timings."""

    def __init__(self) -> None:
        self.ms = 0.0
        self._start = 0.0

    def __enter__(self) -> ToolClock:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ms += (time.perf_counter() - self._start) * 1000
