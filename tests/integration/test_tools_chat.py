"""The OpenAI chat adapter with tools: tool calls streamed in pieces are put back together."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from voice_orchestrator.errors import ProviderFailed
from voice_orchestrator.providers.base import ChatMessage, ToolCall
from voice_orchestrator.providers.openai import OpenAIChatModel, create_client
from voice_orchestrator.settings import LLMSettings

BASE = "http://upstream.test/v1"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def call_delta(index: int | None = None, **fields: Any) -> dict[str, Any]:
    function = {key: fields.pop(key) for key in ("name", "arguments") if key in fields}
    part: dict[str, Any] = {**fields, "function": function}
    if index is not None:
        part["index"] = index
    return {"tool_calls": [part]}


def sse(chunks: list[dict[str, Any]]) -> httpx.Response:
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


def model() -> OpenAIChatModel:
    settings = LLMSettings(provider="openai", base_url=BASE, api_key="sk-test")
    return OpenAIChatModel(create_client(settings), settings)


TWO_CALLS = [
    chunk({"role": "assistant", "content": "Let me "}),
    chunk({"content": "check."}),
    chunk(call_delta(0, id="call_a", type="function", name="get_weather", arguments="")),
    chunk(call_delta(0, arguments='{"ci')),
    chunk(call_delta(0, arguments='ty": "Os')),
    chunk(call_delta(1, id="call_b", type="function", name="get_weather", arguments='{"city"')),
    chunk(call_delta(0, arguments='lo"}')),
    chunk(call_delta(1, arguments=': "Rome"}')),
    chunk({}, finish="tool_calls"),
]


async def test_text_streams_at_once_and_calls_come_whole_at_the_end(
    httpx2_mock: respx.Router,
) -> None:
    route = httpx2_mock.post(BASE + "/chat/completions").mock(return_value=sse(TWO_CALLS))
    items = [i async for i in model().stream_with_tools([ChatMessage("user", "Weather?")], TOOLS)]
    assert items == [
        "Let me ",
        "check.",
        ToolCall("call_a", "get_weather", '{"city": "Oslo"}'),
        ToolCall("call_b", "get_weather", '{"city": "Rome"}'),
    ]
    sent = json.loads(route.calls.last.request.content)
    assert sent["tools"] == TOOLS
    assert sent["stream"] is True


async def test_history_with_calls_and_results_goes_up_in_the_wire_format(
    httpx2_mock: respx.Router,
) -> None:
    route = httpx2_mock.post(BASE + "/chat/completions").mock(
        return_value=sse([chunk({"content": "Sunny."}, finish="stop")])
    )
    call = ToolCall("call_a", "get_weather", '{"city": "Oslo"}')
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Weather in Oslo?"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", '{"forecast": "sunny"}', tool_call_id="call_a"),
    ]
    items = [i async for i in model().stream_with_tools(messages, TOOLS)]
    assert items == ["Sunny."]
    assert json.loads(route.calls.last.request.content)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": '{"forecast": "sunny"}'},
    ]


async def test_calls_without_index_or_id_and_with_repeated_names(
    httpx2_mock: respx.Router,
) -> None:
    chunks = [
        chunk(call_delta(name="get_weather", arguments='{"city": ')),
        chunk(call_delta(name="get_weather", arguments='"Oslo"}')),
        chunk(call_delta(1, name="get_weather")),
    ]
    httpx2_mock.post(BASE + "/chat/completions").mock(return_value=sse(chunks))
    items = [i async for i in model().stream_with_tools([ChatMessage("user", "?")], TOOLS)]
    assert items == [
        ToolCall("call_0", "get_weather", '{"city": "Oslo"}'),
        ToolCall("call_1", "get_weather", "{}"),
    ]


async def test_a_call_without_a_name_is_a_provider_failure(httpx2_mock: respx.Router) -> None:
    chunks = [chunk(call_delta(0, id="call_a", arguments="{}"))]
    httpx2_mock.post(BASE + "/chat/completions").mock(return_value=sse(chunks))
    with pytest.raises(ProviderFailed, match="tool call without a name"):
        [i async for i in model().stream_with_tools([ChatMessage("user", "?")], TOOLS)]


async def test_no_tools_sends_no_tools_key(httpx2_mock: respx.Router) -> None:
    route = httpx2_mock.post(BASE + "/chat/completions").mock(
        return_value=sse([chunk({"content": "Hi."})])
    )
    items = [i async for i in model().stream_with_tools([ChatMessage("user", "?")], [])]
    assert items == ["Hi."]
    assert "tools" not in json.loads(route.calls.last.request.content)
