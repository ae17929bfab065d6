"""Follow-ups of the client's own tool calls: a turn that ended on a call of a tool the client
runs is stored with that call's result empty; the follow-up turn gives the model the client's
output in its place and continues that turn, in the model's context and in the history."""

from __future__ import annotations

from dataclasses import replace

from ..errors import InvalidRequest
from ..providers.base import ChatMessage, ToolCall
from .sessions import Turn, build_context
from .tool_loop import ToolExchange, ToolOutputs, answered


def resumed_turn(turns: list[Turn], outputs: ToolOutputs) -> Turn:
    """The last turn with the results of the client's tool calls that ``outputs`` answer: the
    turn a follow-up continues. InvalidRequest when it holds none of those calls."""
    if not turns or not outputs:
        raise InvalidRequest("No function call is waiting for that output.")
    try:
        return replace(turns[-1], tools=answered(turns[-1].tools, outputs))
    except KeyError:
        raise InvalidRequest("No function call of that id is waiting for its output.") from None


def resumed_context(
    system_prompt: str, turns: list[Turn], outputs: ToolOutputs, *, max_chars: int | None = None
) -> list[ChatMessage]:
    """The messages that precede the outputs of the client's tool calls (which follow as
    ``tool`` messages): the history before the turn that made the calls, its user's words, and
    the assistant's text with all of its calls and the results known before."""
    last = resumed_turn(turns, outputs)
    answering = {call_id for call_id, _ in outputs}
    calls = tuple(ToolCall(e.call_id, e.name, e.arguments) for e in last.tools)
    return [
        *build_context(system_prompt, turns[:-1], max_chars=max_chars),
        *([ChatMessage("user", last.user)] if last.user else []),
        ChatMessage("assistant", last.assistant, tool_calls=calls),
        *(
            ChatMessage("tool", e.result, tool_call_id=e.call_id)
            for e in last.tools
            if e.call_id not in answering
        ),
    ]


def continued(
    base: Turn, reply: str, tools: tuple[ToolExchange, ...], *, interrupted: bool, at: float
) -> Turn:
    """``base`` (a resumed turn) continued by a follow-up's ``reply`` and its own calls."""
    said = " ".join(text for text in (base.assistant, reply) if text)
    return Turn(base.user, said, interrupted, at, base.tools + tools)
