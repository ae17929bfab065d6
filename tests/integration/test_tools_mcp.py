"""The tool box over a real MCP server (the SDK's own, streamable HTTP, in a subprocess)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from voice_orchestrator.metrics import Metrics
from voice_orchestrator.tools.config import ToolConfigError
from voice_orchestrator.tools.registry import Toolbox, load_toolbox

from ..conftest import HANG_S, make_settings
from ..redis_server import free_port

SERVER_SCRIPT = Path(__file__).with_name("mcp_tool_server.py")
TOKEN = "mcp-token-do-not-log-81723"
AUTH = f"Bearer {TOKEN}"


@contextmanager
def mcp_server(auth: str = AUTH, port: int = 0) -> Iterator[subprocess.Popen[str]]:
    """The test MCP server in a subprocess; ``proc.url`` is its endpoint."""
    env = {**os.environ, "TOOLS_TEST_AUTH": auth, "TOOLS_TEST_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=HANG_S), "the MCP server did not start"
        port = int(proc.stdout.readline())
        proc.url = f"http://127.0.0.1:{port}/mcp"  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=HANG_S)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with mcp_server() as proc:
        yield proc.url  # type: ignore[attr-defined]


def write_tools(entries: list[dict[str, object]]) -> str:
    path = Path("tools.json")
    path.write_text(json.dumps({"tools": entries}))
    return str(path)


async def load(entries: list[dict[str, object]], **settings: object) -> Toolbox:
    toolbox = await load_toolbox(make_settings(tools_file=write_tools(entries), **settings))
    assert toolbox is not None
    return toolbox


def mcp_entry(url: str, **extra: object) -> dict[str, object]:
    return {"type": "mcp", "url": url, "headers": {"Authorization": "Bearer ${MCP_TOKEN}"}, **extra}


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TOKEN", TOKEN)


async def test_lists_the_allowed_tools_and_calls_them(mcp_url: str) -> None:
    toolbox = await load([mcp_entry(mcp_url, allow=["add", "forecast", "wait_forever"])])
    try:
        definitions = {d["function"]["name"]: d for d in toolbox.definitions()}
        assert set(definitions) == {"add", "forecast", "wait_forever"}  # not "shout"
        add = definitions["add"]
        assert add["type"] == "function"
        assert add["function"]["description"] == "Adds two integers."
        assert add["function"]["parameters"]["required"] == ["a", "b"]

        result = await toolbox.call("add", '{"a": 2, "b": 40}')
        assert result.ok
        assert result.content == "42"
        assert result.ms > 0
        weather = await toolbox.call("forecast", '{"city": "Oslo"}')
        assert (weather.ok, weather.content) == (True, "Sunny in Oslo, 21 degrees.")
    finally:
        await toolbox.aclose()


async def test_without_allow_every_tool_with_a_valid_name_is_offered(
    mcp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    toolbox = await load([mcp_entry(mcp_url)])
    try:
        assert sorted(toolbox.names) == ["add", "forecast", "shout", "wait_forever"]
        assert (await toolbox.call("shout", '{"text": "hi"}')).content == "HI"
    finally:
        await toolbox.aclose()
    [skipped] = [r for r in caplog.records if r.getMessage().startswith("MCP tool skipped")]
    assert skipped.tool == "docs.search"  # type: ignore[attr-defined]


async def test_a_name_offered_twice_is_a_start_up_error(mcp_url: str) -> None:
    http_add = {"type": "http", "name": "add", "description": "d", "url": "http://h.test/add"}
    with pytest.raises(ToolConfigError, match=r"^ORCH_TOOLS_FILE tools\.json: two tools .*'add'"):
        await load([http_add, mcp_entry(mcp_url)])


async def test_tool_errors_timeouts_and_bad_arguments_become_error_results(mcp_url: str) -> None:
    metrics = Metrics()
    settings = make_settings(tools_file=write_tools([mcp_entry(mcp_url, timeout_s=0.5)]))
    toolbox = await load_toolbox(settings, on_call=metrics.count_tool_call)
    assert toolbox is not None
    try:
        failed = await toolbox.call("forecast", '{"city": "Atlantis"}')
        assert not failed.ok
        assert failed.content.startswith("error: ")
        assert "no forecast for Atlantis" in failed.content

        invalid = await toolbox.call("add", '{"a": "two", "b": 1}')
        assert not invalid.ok
        assert invalid.content.startswith("error: invalid arguments: a: ")

        timed_out = await toolbox.call("wait_forever", "{}")
        assert not timed_out.ok
        assert timed_out.content == "error: the tool did not answer within 0.5 s"

        # The session survives a timed-out call.
        assert (await toolbox.call("add", '{"a": 1, "b": 1}')).content == "2"
    finally:
        await toolbox.aclose()
    text = metrics.render().decode()
    assert 'orchestrator_tool_calls_total{outcome="error",tool="forecast"} 1.0' in text
    assert 'orchestrator_tool_calls_total{outcome="invalid_arguments",tool="add"} 1.0' in text
    assert 'orchestrator_tool_calls_total{outcome="timeout",tool="wait_forever"} 1.0' in text
    assert 'orchestrator_tool_calls_total{outcome="ok",tool="add"} 1.0' in text
    assert 'orchestrator_tool_call_seconds_count{tool="add"} 2.0' in text


async def test_a_cancelled_call_raises_and_the_session_goes_on(mcp_url: str) -> None:
    toolbox = await load([mcp_entry(mcp_url, timeout_s=60)])
    try:
        marker = await asyncio.to_thread(Path("called").resolve)
        arguments = json.dumps({"marker": str(marker)})
        call = asyncio.create_task(toolbox.call("wait_forever", arguments))
        async with asyncio.timeout(HANG_S):  # until the server runs the tool
            while not await asyncio.to_thread(marker.exists):
                await asyncio.sleep(0.01)
        assert not call.done()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert (await toolbox.call("add", '{"a": 3, "b": 4}')).content == "7"
    finally:
        await toolbox.aclose()


async def test_an_allowed_tool_the_server_lacks_is_a_start_up_error(mcp_url: str) -> None:
    with pytest.raises(ToolConfigError, match=r"does not offer .*weather"):
        await load([mcp_entry(mcp_url, allow=["add", "weather"])])


async def test_an_unreachable_server_is_a_start_up_error_without_credentials() -> None:
    port = free_port()
    url = f"http://user:pw-secret@127.0.0.1:{port}/mcp?key=query-secret"
    with pytest.raises(ToolConfigError) as caught:
        await load([mcp_entry(url)])
    message = str(caught.value)
    assert f"MCP server http://127.0.0.1:{port}/mcp cannot be used" in message
    assert "secret" not in message
    assert TOKEN not in message


async def test_a_server_that_never_answers_is_a_start_up_error() -> None:
    release = asyncio.Event()

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ToolConfigError) as caught:
            await load([mcp_entry(f"http://127.0.0.1:{port}/mcp", timeout_s=0.5)])
    finally:
        release.set()
        server.close()
        await server.wait_closed()
    url = f"http://127.0.0.1:{port}/mcp"
    assert str(caught.value) == f"MCP server {url} did not answer within 0.5 s"


async def test_a_refused_token_is_a_start_up_error(
    mcp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_TOKEN", "wrong-token")
    refused = r"MCP server http://127\.0\.0\.1:\d+/mcp cannot be used: MCPError: "
    with pytest.raises(ToolConfigError, match=refused):
        await load([mcp_entry(mcp_url)])


async def test_a_server_that_comes_back_is_reconnected() -> None:
    port = free_port()
    with mcp_server(port=port) as first:
        toolbox = await load([mcp_entry(first.url, timeout_s=5)])  # type: ignore[attr-defined]
        assert (await toolbox.call("add", '{"a": 1, "b": 1}')).content == "2"
    try:
        gone = await toolbox.call("add", '{"a": 1, "b": 2}')
        assert not gone.ok
        assert gone.content.startswith("error: ")
        with mcp_server(port=port):
            back = await toolbox.call("add", '{"a": 1, "b": 2}')
            assert (back.ok, back.content) == (True, "3"), (gone, back)
    finally:
        await toolbox.aclose()


async def test_the_token_never_reaches_the_logs(
    mcp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    toolbox = await load([mcp_entry(mcp_url, timeout_s=0.5)])
    try:
        await toolbox.call("add", '{"a": 1, "b": 2}')
        await toolbox.call("forecast", '{"city": "Atlantis"}')
        await toolbox.call("wait_forever", "{}")
    finally:
        await toolbox.aclose()
    assert caplog.records
    for record in caplog.records:
        everything = record.getMessage() + repr(vars(record))
        assert TOKEN not in everything
        if record.levelno > logging.DEBUG:
            assert "Atlantis" not in everything
