"""HTTP tools against a real tool server (Starlette on a real uvicorn)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from voice_orchestrator.metrics import Metrics
from voice_orchestrator.tools.registry import Toolbox, load_toolbox

from ..conftest import HANG_S, make_settings
from ..redis_server import free_port

TOKEN = "weather-token-never-logged-5521"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
    "additionalProperties": False,
}


@dataclass
class ToolServer:
    url: str = ""
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    slow_entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        async def weather(request: Request) -> Response:
            body = await request.json()
            self.requests.append((dict(request.headers), body))
            return JSONResponse({"city": body["city"], "forecast": "sunny", "degrees": 21})

        async def slow(_request: Request) -> Response:
            self.slow_entered.set()
            await self.release.wait()
            return JSONResponse({"late": True})

        async def broken(_request: Request) -> Response:
            return PlainTextResponse("database down", status_code=500)

        async def text(_request: Request) -> Response:
            return PlainTextResponse("plain words")

        async def big(_request: Request) -> Response:
            return JSONResponse({"text": "x" * 10_000})

        routes = [
            Route(f"/{endpoint.__name__}", endpoint, methods=["POST"])
            for endpoint in (weather, slow, broken, text, big)
        ]
        return Starlette(routes=routes)


@pytest.fixture
async def tool_server() -> AsyncIterator[ToolServer]:
    state = ToolServer()
    config = uvicorn.Config(state.app(), host="127.0.0.1", port=0, log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(HANG_S):
            while not server.started:
                await asyncio.sleep(0.01)
        state.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        yield state
    finally:
        state.release.set()
        server.should_exit = True
        await task


def tool(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "name": name,
        "description": f"The {name} tool.",
        "parameters": WEATHER_SCHEMA,
        "url": url,
        **extra,
    }


def write_tools(entries: list[dict[str, Any]]) -> str:
    path = Path("tools.yaml")
    path.write_text(json.dumps({"tools": entries}))  # JSON is YAML too
    return str(path)


async def load(entries: list[dict[str, Any]], metrics: Metrics | None = None, **kw: Any) -> Toolbox:
    settings = make_settings(tools_file=write_tools(entries), **kw)
    toolbox = await load_toolbox(settings, on_call=metrics.count_tool_call if metrics else None)
    assert toolbox is not None
    return toolbox


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEATHER_TOKEN", TOKEN)


async def test_arguments_are_posted_as_json_with_resolved_headers(tool_server: ToolServer) -> None:
    headers = {"Authorization": "Bearer ${WEATHER_TOKEN}", "X-Client": "voice"}
    toolbox = await load([tool("weather", tool_server.url + "/weather", headers=headers)])
    try:
        assert toolbox.definitions() == [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "The weather tool.",
                    "parameters": WEATHER_SCHEMA,
                },
            }
        ]
        result = await toolbox.call("weather", '{"city": "Oslo", "unit": "celsius"}')
    finally:
        await toolbox.aclose()
    assert result.ok
    assert json.loads(result.content) == {"city": "Oslo", "forecast": "sunny", "degrees": 21}
    [(seen_headers, body)] = tool_server.requests
    assert body == {"city": "Oslo", "unit": "celsius"}
    assert seen_headers["authorization"] == f"Bearer {TOKEN}"
    assert seen_headers["x-client"] == "voice"
    assert seen_headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ('{"unit": "celsius"}', "error: invalid arguments: 'city' is a required property"),
        ('{"city": 7}', "error: invalid arguments: city: 7 is not of type 'string'"),
        ('{"city": "Oslo", "unit": "kelvin"}', "error: invalid arguments: unit: 'kelvin' is not"),
        ('{"city": "Oslo", "when": "now"}', "error: invalid arguments: Additional properties"),
        ('{"city": ', "error: the arguments are not valid JSON"),
        ('["Oslo"]', "error: the arguments must be a JSON object"),
    ],
)
async def test_invalid_arguments_are_refused_before_the_call(
    tool_server: ToolServer, arguments: str, problem: str
) -> None:
    metrics = Metrics()
    toolbox = await load([tool("weather", tool_server.url + "/weather")], metrics)
    try:
        result = await toolbox.call("weather", arguments)
    finally:
        await toolbox.aclose()
    assert not result.ok
    assert result.content.startswith(problem)
    assert tool_server.requests == []
    text = metrics.render().decode()
    assert 'orchestrator_tool_calls_total{outcome="invalid_arguments",tool="weather"} 1.0' in text


async def test_a_slow_tool_times_out_as_an_error_result(tool_server: ToolServer) -> None:
    metrics = Metrics()
    toolbox = await load([tool("slow", tool_server.url + "/slow", timeout_s=0.2)], metrics)
    try:
        result = await toolbox.call("slow", '{"city": "Oslo"}')
    finally:
        await toolbox.aclose()
    assert (result.ok, result.content) == (False, "error: the tool did not answer within 0.2 s")
    assert tool_server.slow_entered.is_set()
    text = metrics.render().decode()
    assert 'orchestrator_tool_calls_total{outcome="timeout",tool="slow"} 1.0' in text
    assert 'orchestrator_tool_call_seconds_count{tool="slow"} 1.0' in text


async def test_cancelling_a_call_propagates(tool_server: ToolServer) -> None:
    toolbox = await load([tool("slow", tool_server.url + "/slow", timeout_s=60)])
    try:
        call = asyncio.create_task(toolbox.call("slow", '{"city": "Oslo"}'))
        async with asyncio.timeout(HANG_S):
            await tool_server.slow_entered.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        await toolbox.aclose()


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("/broken", "error: the tool answered HTTP 500: database down"),
        ("/text", "error: the tool's answer is not JSON"),
        ("/missing", "error: the tool answered HTTP 404: Not Found"),
    ],
)
async def test_failing_tools_become_error_results(
    tool_server: ToolServer, endpoint: str, expected: str
) -> None:
    toolbox = await load([tool("weather", tool_server.url + endpoint)])
    try:
        result = await toolbox.call("weather", '{"city": "Oslo"}')
    finally:
        await toolbox.aclose()
    assert (result.ok, result.content) == (False, expected)


async def test_an_unreachable_tool_is_an_error_result() -> None:
    toolbox = await load([tool("weather", f"http://127.0.0.1:{free_port()}/weather")])
    try:
        result = await toolbox.call("weather", '{"city": "Oslo"}')
    finally:
        await toolbox.aclose()
    assert (result.ok, result.content) == (
        False,
        "error: the tool could not be reached (ConnectError)",
    )


async def test_results_are_cut_to_the_configured_length(tool_server: ToolServer) -> None:
    toolbox = await load([tool("big", tool_server.url + "/big")], max_tool_result_chars=100)
    try:
        result = await toolbox.call("big", '{"city": "Oslo"}')
    finally:
        await toolbox.aclose()
    assert result.ok
    assert len(result.content) == 100
    assert result.content.startswith('{"text":"xxx')
    assert result.content.endswith("…[cut]")


async def test_an_unknown_tool_is_an_error_result(tool_server: ToolServer) -> None:
    metrics = Metrics()
    toolbox = await load([tool("weather", tool_server.url + "/weather")], metrics)
    try:
        result = await toolbox.call("launch_rockets", "{}")
    finally:
        await toolbox.aclose()
    assert (result.ok, result.content) == (False, "error: there is no tool named 'launch_rockets'")
    text = metrics.render().decode()
    assert 'orchestrator_tool_calls_total{outcome="unknown_tool",tool="(unknown)"} 1.0' in text


async def test_headers_never_and_arguments_only_at_debug_reach_the_logs(
    tool_server: ToolServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = {"Authorization": "Bearer ${WEATHER_TOKEN}"}
    toolbox = await load(
        [
            tool("weather", tool_server.url + "/weather", headers=headers),
            tool("slow", tool_server.url + "/slow", headers=headers, timeout_s=0.2),
        ]
    )
    try:
        await toolbox.call("weather", '{"city": "Reykjavik"}')
        await toolbox.call("slow", '{"city": "Reykjavik"}')
        await toolbox.call("weather", '{"city": 1}')
    finally:
        await toolbox.aclose()
    assert tool_server.requests  # the header was sent
    finished = [r for r in caplog.records if r.getMessage() == "tool call finished"]
    assert [(r.levelname, r.tool, r.outcome) for r in finished] == [  # type: ignore[attr-defined]
        ("INFO", "weather", "ok"),
        ("INFO", "slow", "timeout"),
        ("INFO", "weather", "invalid_arguments"),
    ]
    debug_text = " ".join(repr(vars(r)) for r in caplog.records if r.levelno == logging.DEBUG)
    assert "Reykjavik" in debug_text  # arguments and results are there at DEBUG...
    for record in caplog.records:
        everything = record.getMessage() + repr(vars(record))
        assert TOKEN not in everything
        if record.levelno > logging.DEBUG:
            assert "Reykjavik" not in everything  # ...and only there
