"""Tool argument checks against the tool's JSON schema, and compact JSON text."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]

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
