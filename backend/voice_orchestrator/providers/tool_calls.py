"""Tool calls in the chat completions wire format: messages out, streamed calls back in."""

from __future__ import annotations

from typing import Any

from ..errors import ProviderFailed
from .base import ChatMessage, ToolCall


def message_json(message: ChatMessage) -> dict[str, Any]:
    """A message in the chat completions wire format."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.tool_calls:
        return {
            "role": message.role,
            # Some servers refuse an empty string next to tool calls; null is the documented form.
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


class ToolCallParts:
    """Reassembles streamed tool calls: the first delta of a call carries its index, id and
    name, later ones (same index) pieces of the arguments text."""

    def __init__(self) -> None:
        self._ids: dict[int, str] = {}
        self._names: dict[int, str] = {}
        self._arguments: dict[int, list[str]] = {}

    def add(self, chunk: object) -> None:
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        first = choices[0] if isinstance(choices, list) and choices else None
        delta = first.get("delta") if isinstance(first, dict) else None
        deltas = delta.get("tool_calls") if isinstance(delta, dict) else None
        if not isinstance(deltas, list):
            return
        for part in deltas:
            if not isinstance(part, dict):
                raise ProviderFailed("llm", "The llm service sent a malformed tool call.")
            index = part.get("index")
            if not isinstance(index, int) or isinstance(index, bool):
                # Servers that omit the index: a delta with an id starts the next call.
                known = len(self._arguments)
                index = known if part.get("id") or not known else max(self._arguments)
            pieces = self._arguments.setdefault(index, [])
            if isinstance(call_id := part.get("id"), str) and call_id:
                self._ids[index] = call_id
            function = part.get("function")
            if not isinstance(function, dict):
                continue
            # Assigned, not appended: some servers repeat the whole name in every delta.
            if isinstance(name := function.get("name"), str) and name:
                self._names[index] = name
            if isinstance(arguments := function.get("arguments"), str):
                pieces.append(arguments)

    def complete(self) -> list[ToolCall]:
        calls = []
        for index in sorted(self._arguments):
            name = self._names.get(index)
            if name is None:
                raise ProviderFailed("llm", "The llm service sent a tool call without a name.")
            calls.append(
                ToolCall(
                    id=self._ids.get(index) or f"call_{index}",
                    name=name,
                    arguments="".join(self._arguments[index]) or "{}",
                )
            )
        return calls
