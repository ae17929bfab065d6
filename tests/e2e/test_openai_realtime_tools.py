"""The client's own function tools on /v1/realtime, driven by the official ``openai`` SDK against
a real uvicorn: the model's call as a ``function_call`` item, the client's output given back to
the model by the next response, in both dialects; a model that cannot call tools answers."""

from __future__ import annotations

import json
from typing import Any

from voice_orchestrator.providers.base import ToolCall

from ..fakes import FakeLLM, FakeToolLLM, fake_providers
from .conftest import ServerFactory
from .test_openai_realtime import QUESTION, append, audio_of, of, realtime, until

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CALL = ToolCall("call_7", "get_weather", '{"city": "Paris"}')
ANSWER = "It is sunny in Paris."


def weather_llm() -> FakeToolLLM:
    return FakeToolLLM([["Let me check. ", CALL]], tokens=(ANSWER,))


async def test_spoken_question_function_call_then_output(live_server: ServerFactory) -> None:
    llm = weather_llm()
    async with live_server(fake_providers(llm=llm)) as server, realtime(server) as connection:
        await until(connection, "session.created")
        await connection.session.update(
            session={
                "type": "realtime",
                "tools": [WEATHER_TOOL],
                "audio": {"input": {"turn_detection": None}},
            }
        )
        updated = (await until(connection, "session.updated"))[-1]
        assert updated.session.tools[0].name == "get_weather"
        await append(connection, QUESTION)
        await connection.input_audio_buffer.commit()
        await connection.response.create()
        first = await until(connection, "response.done")

        done = first[-1].response
        assert done.status == "completed"
        message, call = done.output
        assert (message.type, message.content[0].transcript) == ("message", "Let me check.")
        assert (call.type, call.call_id, call.name) == ("function_call", "call_7", "get_weather")
        assert json.loads(call.arguments) == {"city": "Paris"}
        deltas = of(first, "response.function_call_arguments.delta")
        assert "".join(d.delta for d in deltas) == CALL.arguments
        args_done = of(first, "response.function_call_arguments.done")[0]
        assert (args_done.call_id, args_done.name, args_done.item_id) == (
            "call_7",
            "get_weather",
            call.id,
        )
        assert args_done.output_index == 1
        kinds = [event.type for event in first]
        # The message is finished before the call's item begins; the call before response.done.
        message_done = kinds.index("response.output_item.done")
        assert message_done < kinds.index("response.function_call_arguments.delta")
        assert kinds.index("response.function_call_arguments.done") < len(kinds) - 1
        assert of(first, "response.output_item.done")[-1].item.id == call.id
        assert audio_of(first)  # "Let me check." was spoken
        assert llm.offered == [["get_weather"]]

        await connection.conversation.item.create(
            item={"type": "function_call_output", "call_id": "call_7", "output": '{"sky": "sun"}'}
        )
        await connection.response.create()
        second = await until(connection, "response.done")

    assert second[-1].response.status == "completed"
    transcript = "".join(e.delta for e in of(second, "response.output_audio_transcript.delta"))
    assert transcript == ANSWER
    # The model saw its call and the client's output, and no new user message.
    context = llm.calls[-1]
    assert [m.role for m in context[1:]] == ["user", "assistant", "tool"]
    assert context[1].content == "What is the capital of France?"
    assert (context[2].content, context[2].tool_calls) == ("Let me check.", (CALL,))
    assert (context[3].content, context[3].tool_call_id) == ('{"sky": "sun"}', "call_7")
    assert llm.offered[-1] == ["get_weather"]


async def test_text_question_text_answer_and_the_history_after_it(
    live_server: ServerFactory,
) -> None:
    llm = FakeToolLLM([[CALL]], tokens=(ANSWER,))
    async with live_server(fake_providers(llm=llm)) as server, realtime(server) as connection:
        await until(connection, "session.created")
        await connection.session.update(
            session={"type": "realtime", "tools": [WEATHER_TOOL], "output_modalities": ["text"]}
        )
        await until(connection, "session.updated")
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Weather in Paris?"}],
            }
        )
        await connection.response.create()
        first = await until(connection, "response.done")
        # Nothing said before the call: the call is the only output item.
        [call] = first[-1].response.output
        assert (call.type, call.call_id, first[-1].response.status) == (
            "function_call",
            "call_7",
            "completed",
        )
        assert of(first, "response.function_call_arguments.done")[0].output_index == 0
        assert not of(first, "response.output_text.delta")

        await connection.conversation.item.create(
            item={"type": "function_call_output", "call_id": "call_7", "output": "sunny"}
        )
        added = (await until(connection, "conversation.item.done"))[-1].item
        assert (added.type, added.call_id, added.output) == (
            "function_call_output",
            "call_7",
            "sunny",
        )
        await connection.response.create()
        second = await until(connection, "response.done")
        assert second[-1].response.output[0].content[0].text == ANSWER

        # A later question sees the call, its output and the answer as one turn.
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "And tomorrow?"}],
            }
        )
        await connection.response.create()
        await until(connection, "response.done")
        # An output for a call the model did not make is refused.
        await connection.conversation.item.create(
            item={"type": "function_call_output", "call_id": "call_none", "output": "x"}
        )
        await connection.response.create()
        error = (await until(connection, "error"))[-1].error
        assert error.code == "INVALID_REQUEST"

    context = llm.calls[-1]
    assert [(m.role, m.content) for m in context[1:]] == [
        ("user", "Weather in Paris?"),
        ("assistant", ""),
        ("tool", "sunny"),
        ("assistant", ANSWER),
        ("user", "And tomorrow?"),
    ]
    assert context[2].tool_calls == (CALL,)


async def test_beta_dialect(live_server: ServerFactory) -> None:
    llm = weather_llm()
    async with live_server(fake_providers(llm=llm)) as server, realtime(server, beta=True) as conn:
        await until(conn, "session.created")
        await conn.session.update(session={"tools": [WEATHER_TOOL], "modalities": ["text"]})
        updated = (await until(conn, "session.updated"))[-1]
        assert updated.session.tools[0].name == "get_weather"
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Weather in Paris?"}],
            }
        )
        await conn.response.create()
        first = await until(conn, "response.done")
        call = first[-1].response.output[-1]
        assert (call.type, call.call_id, call.name) == ("function_call", "call_7", "get_weather")
        assert of(first, "response.function_call_arguments.done")[0].arguments == CALL.arguments
        assert of(first, "conversation.item.created")
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": "call_7", "output": "sunny"}
        )
        await conn.response.create()
        second = await until(conn, "response.done")

    assert "".join(e.delta for e in of(second, "response.text.delta")) == ANSWER
    assert llm.calls[-1][-1].role == "tool"


async def test_a_model_that_cannot_call_tools_answers_and_reports_none(
    live_server: ServerFactory,
) -> None:
    llm = FakeLLM()  # like the embedded model: no stream_with_tools
    async with live_server(fake_providers(llm=llm)) as server, realtime(server) as connection:
        await until(connection, "session.created")
        await connection.session.update(session={"type": "realtime", "tools": [WEATHER_TOOL]})
        updated = (await until(connection, "session.updated"))[-1]
        assert updated.session.tools == []
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Weather in Paris?"}],
            }
        )
        await connection.response.create()
        events: list[Any] = await until(connection, "response.done")

    assert events[-1].response.status == "completed"
    assert [item.type for item in events[-1].response.output] == ["message"]
