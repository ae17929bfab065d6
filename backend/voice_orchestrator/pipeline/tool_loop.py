"""Tool calls inside a turn: the calls of one round run concurrently, a filler sentence is
spoken when they take longer than the filler delay, and every result (an error result when a
call failed or timed out) goes back to the model as a ``tool`` message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
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


@dataclass(frozen=True, slots=True)
class ClientToolCall:
    """The model called one of the client's own tools: nothing runs here. The turn ends after
    the text said so far; the client runs the tool and a follow-up turn (``tool_outputs``)
    gives the model its output."""

    call: ToolCall


ToolEvent = ToolCallStarted | ToolCallEnded

# What a client gives for its tool calls: (call_id, output) pairs.
ToolOutputs = Sequence[tuple[str, str]]


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


def offered_tools(
    tools: ToolRunner | None, client_tools: Sequence[Mapping[str, Any]] | None
) -> list[Mapping[str, Any]]:
    """The definitions offered to the model: ours and the client's (theirs shadow ours of the
    same name)."""
    theirs = list(client_tools or ())
    names = {_name(tool) for tool in theirs}
    ours = tools.definitions() if tools is not None else []
    return [*(tool for tool in ours if _name(tool) not in names), *theirs]


def split_calls(
    calls: Sequence[ToolCall],
    tools: ToolRunner | None,
    client_tools: Sequence[Mapping[str, Any]] | None,
) -> tuple[list[ToolCall], list[ToolCall]]:
    """The calls that run here and those the client runs: its tools', or every call when no
    tool runs here."""
    names = {_name(tool) for tool in client_tools or ()}

    def theirs(call: ToolCall) -> bool:
        return client_tools is not None and (tools is None or call.name in names)

    return (
        [call for call in calls if tools is not None and not theirs(call)],
        [call for call in calls if theirs(call)],
    )


def _name(tool: Mapping[str, Any]) -> str:
    function = tool.get("function")
    return str(function.get("name", "")) if isinstance(function, Mapping) else ""


def answered(exchanges: Sequence[ToolExchange], outputs: ToolOutputs) -> tuple[ToolExchange, ...]:
    """``exchanges`` with the results of the calls ``outputs`` answer; KeyError naming a call
    id that none of them holds."""
    results = dict(outputs)
    unknown = results.keys() - {e.call_id for e in exchanges}
    if unknown:
        raise KeyError(min(unknown))
    return tuple(
        replace(e, result=results[e.call_id]) if e.call_id in results else e for e in exchanges
    )


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
