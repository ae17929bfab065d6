"""What every kind of tool offers the tool box, what a call gives back, and the check of a
call's arguments against the tool's JSON schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jsonschema  # type: ignore[import-untyped]
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]

# (tool name, outcome, seconds): the metrics hook. Outcomes: ok, error, timeout, cancelled,
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


# Returns the first way a value breaks the schema, or None.
ArgumentCheck = Callable[[object], str | None]


def compile_schema(schema: dict[str, Any]) -> ArgumentCheck:
    """A check of values against ``schema`` (of the draft it names, 2020-12 by default).
    Raises ValueError when ``schema`` is not a valid JSON schema."""
    validator_class: Any = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator
    )
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise ValueError(f"not a valid JSON schema: {e.message}") from None
    validator = validator_class(schema)

    def check(value: object) -> str | None:
        error = best_match(validator.iter_errors(value))
        if error is None:
            return None
        path = ".".join(str(part) for part in error.absolute_path)
        message = str(error.message)
        return f"{path}: {message}" if path else message

    return check


def json_text(value: object) -> str:
    """``value`` as compact JSON (for results the model reads)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
