"""The tools file (ORCH_TOOLS_FILE): HTTP tools and MCP servers the assistant may call.

Read once at start-up. Header values may reference environment variables as ``${NAME}``; they
are resolved here, kept as ``SecretStr`` and never logged. Every error names the file and the
field (never a header value).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ..settings import Settings
from .base import compile_schema

TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ToolConfigError(ValueError):
    """The tools configuration cannot be used; the message says where and why."""


def safe_url(url: str) -> str:
    """``url`` without user info, query or fragment, fit for logs and error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return value


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    # Values may hold credentials: SecretStr keeps them out of reprs and error messages.
    headers: dict[str, SecretStr] = {}
    timeout_s: float = Field(10.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class HttpToolConfig(_Entry):
    """A tool served by ``POST url`` with the arguments as a JSON body; the JSON answer is the
    result."""

    type: Literal["http"]
    name: Annotated[str, Field(pattern=TOOL_NAME)]
    description: str
    parameters: dict[str, Any] = {"type": "object", "properties": {}}

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError('must be a JSON schema with "type": "object"')
        compile_schema(value)  # raises ValueError for a schema that is not valid
        return value


class McpServerConfig(_Entry):
    """A streamable-HTTP MCP server; its tools are listed at start-up, narrowed by ``allow``."""

    type: Literal["mcp"]
    allow: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None


ToolEntry = Annotated[HttpToolConfig | McpServerConfig, Field(discriminator="type")]


class ToolsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tools: list[ToolEntry]


def _location(loc: tuple[int | str, ...]) -> str:
    """``tools[0].url`` for pydantic's ``("tools", 0, "http", "url")``: the tag of the union is
    not a field of the file."""
    text = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(previous, int) and part in ("http", "mcp"):
            previous = part
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        previous = part
    return text or "(top level)"


def _parse(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ToolConfigError(f"ORCH_TOOLS_FILE {path}: cannot be read ({e.strerror})") from e
    except UnicodeDecodeError as e:
        raise ToolConfigError(f"ORCH_TOOLS_FILE {path}: not UTF-8 text") from e
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ToolConfigError(f"ORCH_TOOLS_FILE {path}: not valid JSON or YAML: {e}") from e


def _resolve(value: str, where: str, environ: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        resolved = environ.get(name)
        if not resolved:
            raise ToolConfigError(f"{where}: environment variable {name} is not set")
        return resolved

    return _ENV_REFERENCE.sub(substitute, value)


def load_tools_config(path: str | Path, environ: Mapping[str, str] | None = None) -> ToolsConfig:
    """Reads, validates and resolves the tools file. Raises ToolConfigError."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    data = _parse(path)
    try:
        config = ToolsConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{_location(error['loc'])}: {error['msg']}"
            for error in e.errors(include_url=False, include_input=False)
        )
        raise ToolConfigError(f"ORCH_TOOLS_FILE {path}: {problems}") from None
    entries: list[HttpToolConfig | McpServerConfig] = []
    names: set[str] = set()
    for index, entry in enumerate(config.tools):
        if isinstance(entry, HttpToolConfig):
            if entry.name in names:
                raise ToolConfigError(
                    f"ORCH_TOOLS_FILE {path}: tools[{index}].name: {entry.name!r} is used twice"
                )
            names.add(entry.name)
        headers = {
            key: SecretStr(
                _resolve(
                    value.get_secret_value(),
                    f"ORCH_TOOLS_FILE {path}: tools[{index}].headers.{key}",
                    environ,
                )
            )
            for key, value in entry.headers.items()
        }
        entries.append(entry.model_copy(update={"headers": headers}))
    return config.model_copy(update={"tools": entries})


def check_tool_support(settings: Settings) -> None:
    """Raises ToolConfigError when a tools file is configured for a model that cannot call
    tools (the embedded llama model)."""
    if settings.tools_file and settings.llm.provider != "openai":
        raise ToolConfigError(
            f"ORCH_TOOLS_FILE is set, but ORCH_LLM__PROVIDER={settings.llm.provider} cannot call "
            "tools; use ORCH_LLM__PROVIDER=openai with a model that supports tool calls, or "
            "unset ORCH_TOOLS_FILE"
        )
    if settings.tools_file and settings.llm.fallback is not None:
        raise ToolConfigError(
            "ORCH_TOOLS_FILE is set together with ORCH_LLM__FALLBACK__PROVIDER; tool calls are "
            "not offered through a fallback model: unset one of them"
        )
