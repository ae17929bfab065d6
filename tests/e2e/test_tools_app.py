"""Tools through the served app: a real MCP server (the SDK's own, in a subprocess) and a real
HTTP tool server, called by a scripted model, over REST and the WebSocket."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from voice_orchestrator.providers.base import ToolCall

from ..conftest import HANG_S
from ..fakes import FakeToolLLM, fake_providers, make_wav
from ..integration.test_tools_http import ToolServer, tool, tool_server
from ..integration.test_tools_mcp import TOKEN, mcp_entry, mcp_server
from ..ws_client import client, start
from .conftest import ServerFactory

__all__ = ["tool_server"]  # the fixture, used by name

ADD = ToolCall("call_add", "add", '{"a": 2, "b": 40}')
WEATHER = ToolCall("call_weather", "weather", '{"city": "Paris"}')


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with mcp_server() as proc:
        yield proc.url  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TOKEN", TOKEN)
    monkeypatch.setenv("WEATHER_TOKEN", "weather-token")


def tools_file(mcp_url: str, server: ToolServer) -> str:
    entries = [mcp_entry(mcp_url, allow=["add"]), tool("weather", f"{server.url}/weather")]
    with open("tools.json", "w") as file:
        json.dump({"tools": entries}, file)
    return "tools.json"


# The model behind the fakes is declared an OpenAI-compatible one: the embedded model cannot
# call tools and the service refuses a tools file with it.
LLM = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}


async def test_a_rest_turn_calls_both_tools_and_reports_their_time(
    live_server: ServerFactory, mcp_url: str, tool_server: ToolServer
) -> None:
    llm = FakeToolLLM([[ADD, WEATHER]], tokens=("It is 42 and sunny.",))
    settings = {"tools_file": tools_file(mcp_url, tool_server), "llm": LLM}
    async with live_server(fake_providers(llm=llm), **settings) as server, httpx.AsyncClient() as c:
        response = await c.post(
            f"{server.url}/api/orchestrator/dialogue",
            content=make_wav(1.0, 16_000),
            headers={"content-type": "audio/wav", "accept": "application/json"},
            timeout=HANG_S,
        )
    assert response.status_code == 200, response.text
    assert float(response.headers["x-processing-time-tools"]) > 0
    assert "tools;dur=" in response.headers["server-timing"]
    assert response.json()["response_text"] == "It is 42 and sunny."
    results = {m.tool_call_id: m.content for m in llm.calls[-1] if m.role == "tool"}
    assert results["call_add"] == "42"
    assert json.loads(results["call_weather"])["forecast"] == "sunny"
    assert tool_server.requests[0][1] == {"city": "Paris"}


async def test_the_websocket_tells_the_client_about_each_call(
    live_server: ServerFactory, mcp_url: str, tool_server: ToolServer
) -> None:
    llm = FakeToolLLM([[ADD]], tokens=("Forty-two.",))
    settings = {"tools_file": tools_file(mcp_url, tool_server), "llm": LLM}
    async with live_server(fake_providers(llm=llm), **settings) as server, client(server.url) as c:
        await start(c)
        await c.speak()
        called = await c.until("tool.call")
        result = await c.until("tool.result")
        done = await c.until("response.done")
    assert called["name"] == "add"
    assert result["call_id"] == called["call_id"] == "call_add"
    assert result["ok"] is True
    assert done["text"] == "Forty-two."
