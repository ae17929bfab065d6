"""The tools file: validation errors name the file and the field, never a header's value."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from voice_orchestrator.settings import Settings
from voice_orchestrator.tools.config import (
    HttpToolConfig,
    McpServerConfig,
    ToolConfigError,
    check_tool_support,
    load_tools_config,
)
from voice_orchestrator.tools.registry import cap, load_toolbox

from ..conftest import make_settings

YAML = """
tools:
  - type: http
    name: get_weather
    description: Tomorrow's weather in a city.
    url: https://tools.example/weather
    headers:
      Authorization: Bearer ${WEATHER_KEY}
      X-Account: ${ACCOUNT}-${REGION}
    parameters:
      type: object
      properties:
        city: {type: string}
      required: [city]
  - type: mcp
    url: https://mcp.example/mcp
    allow: [search]
    timeout_s: 3
"""
ENV = {"WEATHER_KEY": "wk-123", "ACCOUNT": "acme", "REGION": "eu"}
HTTP_TOOL = {"type": "http", "name": "t", "description": "d", "url": "http://localhost/t"}


def write(name: str, content: str) -> Path:
    path = Path(name)
    path.write_text(content)
    return path


def write_json(entries: list[dict[str, Any]]) -> Path:
    return write("tools.json", json.dumps({"tools": entries}))


def test_yaml_file_with_both_kinds_and_resolved_headers() -> None:
    config = load_tools_config(write("tools.yaml", YAML), ENV)
    http, mcp = config.tools
    assert isinstance(http, HttpToolConfig)
    assert isinstance(mcp, McpServerConfig)
    assert http.name == "get_weather"
    assert http.timeout_s == 10.0
    assert http.parameters["required"] == ["city"]
    headers = {key: value.get_secret_value() for key, value in http.headers.items()}
    assert headers == {"Authorization": "Bearer wk-123", "X-Account": "acme-eu"}
    assert "wk-123" not in repr(config)  # resolved values stay secret in reprs
    assert (mcp.url, mcp.allow, mcp.timeout_s, mcp.headers) == (
        "https://mcp.example/mcp",
        ["search"],
        3.0,
        {},
    )


def test_json_file_and_default_parameters() -> None:
    config = load_tools_config(write_json([HTTP_TOOL]), {})
    [tool] = config.tools
    assert isinstance(tool, HttpToolConfig)
    assert tool.parameters == {"type": "object", "properties": {}}
    assert tool.headers == {}


def test_a_missing_variable_names_itself_and_the_field() -> None:
    path = write("tools.yaml", YAML)
    with pytest.raises(ToolConfigError) as caught:
        load_tools_config(path, {"WEATHER_KEY": "wk-123", "ACCOUNT": "acme"})
    message = str(caught.value)
    assert message == (
        f"ORCH_TOOLS_FILE {path}: tools[0].headers.X-Account: "
        "environment variable REGION is not set"
    )


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ({**HTTP_TOOL, "name": "get weather"}, "tools[0].name: String should match"),
        ({**HTTP_TOOL, "name": "x" * 65}, "tools[0].name"),
        ({**HTTP_TOOL, "url": "ftp://host/x"}, "tools[0].url: Value error, must be an http"),
        ({**HTTP_TOOL, "timeout_s": 0}, "tools[0].timeout_s"),
        ({**HTTP_TOOL, "parameters": {"type": "string"}}, "tools[0].parameters"),
        (
            {**HTTP_TOOL, "parameters": {"type": "object", "required": "city"}},
            "tools[0].parameters: Value error, not a valid JSON schema",
        ),
        ({**HTTP_TOOL, "retries": 3}, "tools[0].retries: Extra inputs are not permitted"),
        ({"type": "http", "name": "t", "url": "http://h/"}, "tools[0].description: Field"),
        ({"type": "grpc", "url": "http://h/"}, "tools[0]: Input tag 'grpc'"),
        ({"type": "mcp"}, "tools[0].url: Field required"),
        ({"type": "mcp", "url": "http://h/", "allow": []}, "tools[0].allow"),
    ],
)
def test_invalid_entries_name_the_file_and_the_field(entry: dict[str, Any], where: str) -> None:
    path = write_json([entry])
    with pytest.raises(ToolConfigError) as caught:
        load_tools_config(path, {})
    message = str(caught.value)
    assert message.startswith(f"ORCH_TOOLS_FILE {path}: ")
    assert where in message


def test_a_literal_header_value_stays_out_of_errors() -> None:
    entry = {**HTTP_TOOL, "name": "bad name", "headers": {"Authorization": "Bearer literal-key"}}
    with pytest.raises(ToolConfigError) as caught:
        load_tools_config(write_json([entry]), {})
    assert "literal-key" not in str(caught.value)


def test_two_http_tools_of_one_name_are_refused() -> None:
    with pytest.raises(ToolConfigError, match=r"tools\[1\]\.name: 't' is used twice"):
        load_tools_config(write_json([HTTP_TOOL, HTTP_TOOL]), {})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("tools: [unclosed", "not valid JSON or YAML"),
        ("- just a list", "(top level): Input should be a valid dictionary"),
        ("{}", "tools: Field required"),
    ],
)
def test_unusable_files(content: str, problem: str) -> None:
    path = write("tools.yaml", content)
    pattern = rf"^ORCH_TOOLS_FILE {path}: .*{re.escape(problem)}"
    with pytest.raises(ToolConfigError, match=pattern):
        load_tools_config(path, {})


def test_a_missing_file_is_named() -> None:
    with pytest.raises(ToolConfigError, match=r"ORCH_TOOLS_FILE nowhere\.yaml: cannot be read"):
        load_tools_config("nowhere.yaml", {})


def test_the_embedded_model_with_tools_is_a_start_up_error() -> None:
    with pytest.raises(ToolConfigError, match="ORCH_LLM__PROVIDER=llama cannot call tools"):
        check_tool_support(make_settings(tools_file="tools.yaml"))
    check_tool_support(make_settings())  # no tools, any model
    check_tool_support(
        make_settings(
            tools_file="tools.yaml", llm={"provider": "openai", "base_url": "http://h/v1"}
        )
    )


def test_tools_with_a_fallback_model_are_a_start_up_error() -> None:
    llm = {
        "provider": "openai",
        "base_url": "http://h/v1",
        "fallback": {"provider": "openai", "base_url": "http://other/v1"},
    }
    with pytest.raises(ToolConfigError, match="ORCH_LLM__FALLBACK__PROVIDER"):
        check_tool_support(make_settings(tools_file="tools.yaml", llm=llm))


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = make_settings()
    assert (defaults.tools_file, defaults.max_tool_rounds, defaults.tool_filler_ms) == (
        None,
        3,
        700,
    )
    assert (defaults.tool_filler, defaults.max_tool_result_chars) == ("One moment.", 4000)
    monkeypatch.setenv("ORCH_TOOLS_FILE", "/etc/tools.yaml")
    monkeypatch.setenv("ORCH_MAX_TOOL_ROUNDS", "5")
    monkeypatch.setenv("ORCH_TOOL_FILLER_MS", "300")
    monkeypatch.setenv("ORCH_TOOL_FILLER", "Let me check.")
    monkeypatch.setenv("ORCH_MAX_TOOL_RESULT_CHARS", "2000")
    settings = Settings(_env_file=None)
    assert settings.tools_file == "/etc/tools.yaml"
    assert settings.max_tool_rounds == 5
    assert settings.tool_filler_ms == 300
    assert settings.tool_filler == "Let me check."
    assert settings.max_tool_result_chars == 2000


async def test_no_tools_file_means_no_tool_box() -> None:
    assert await load_toolbox(make_settings()) is None


async def test_load_toolbox_reports_file_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("tools.yaml", YAML)
    monkeypatch.delenv("WEATHER_KEY", raising=False)
    with pytest.raises(ToolConfigError, match="environment variable WEATHER_KEY is not set"):
        await load_toolbox(make_settings(tools_file=str(path)))


def test_cap_marks_what_it_cuts() -> None:
    assert cap("short", 10) == "short"
    assert cap("a" * 20, 10) == "aaaa…[cut]"
