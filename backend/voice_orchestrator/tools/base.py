"""What every kind of tool offers the tool box, and what a call gives back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

# (tool name, outcome, seconds): the metrics hook. Outcomes: ok, error, timeout,
# invalid_arguments, unknown_tool.
ToolCallHook = Callable[[str, str, float], None]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What the model is told about one call: ``content`` is the answer, or ``"error: ..."``
    when ``ok`` is false. ``ms`` is the time the call took, checks included."""

    ok: bool
    content: str
    ms: float


class ToolFailure(Exception):
    """A tool could not give a result; the message is what the model is told."""


class Tool(Protocol):
    name: str
    description: str
    parameters: dict[str, Any]
    timeout_s: float

    async def invoke(self, arguments: dict[str, Any]) -> str:
        """The tool's answer as text. Raises ToolFailure, or TimeoutError."""
        ...
