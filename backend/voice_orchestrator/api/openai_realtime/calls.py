"""The client's own function tools: the session's ``tools`` as the language model is offered
them, and a call of one as the protocol's ``function_call`` output item.

The model's call ends its response: the item follows the assistant message (if the model said
anything first), its arguments come whole in one ``response.function_call_arguments.delta``,
and ``response.done`` reports the response completed. The client runs the function and sends
``conversation.item.create`` with a ``function_call_output`` item, then ``response.create``:
that response gives the model the output (``Conversation.respond(tool_outputs=...)``).
"""

from __future__ import annotations

import logging
from typing import Any

from ...errors import InvalidRequest
from ...pipeline import events as ev
from .wire import Wire, new_id

logger = logging.getLogger(__name__)

_FUNCTION_FIELDS = ("name", "description", "parameters")


def chat_tools(tools: list[Any], tool_choice: Any) -> list[dict[str, Any]] | None:
    """The session's function tools in the chat ``tools`` format the model is offered (None:
    none, or ``tool_choice`` "none"). Other kinds of tool (MCP servers) are not offered."""
    if tool_choice == "none":
        return None
    offered = [
        {
            "type": "function",
            "function": {key: tool[key] for key in _FUNCTION_FIELDS if tool.get(key) is not None},
        }
        for tool in tools
        if isinstance(tool, dict) and tool.get("type", "function") == "function"
        if tool.get("name")
    ]
    if len(offered) < len(tools):
        logger.info("realtime tools without effect", extra={"count": len(tools) - len(offered)})
    return offered or None


def tool_output(item: dict[str, Any]) -> tuple[str, str]:
    """A ``function_call_output`` item as the (call id, output) pair the core takes."""
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest("A function call output needs the call_id of its call.")
    output = item.get("output", "")
    return call_id, output if isinstance(output, str) else str(output)


def output_item(item_id: str, call_id: str, output: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call_output",
        "call_id": call_id,
        "output": output,
        "status": "completed",
    }


async def send_call(
    wire: Wire, response_id: str, output_index: int, call: ev.ToolCallRequested
) -> dict[str, Any]:
    """Sends the call as a ``function_call`` output item; returns the finished item."""
    item = {
        "id": new_id("item"),
        "object": "realtime.item",
        "type": "function_call",
        "status": "in_progress",
        "call_id": call.call_id,
        "name": call.name,
        "arguments": "",
    }
    where = {"response_id": response_id, "output_index": output_index}
    await wire.send("response.output_item.added", item=item, **where)
    await wire.send("conversation.item.added", item=item)
    ids = {"item_id": item["id"], "call_id": call.call_id, **where}
    await wire.send("response.function_call_arguments.delta", delta=call.arguments, **ids)
    named = {} if wire.beta else {"name": call.name}  # the beta event has no name
    await wire.send(
        "response.function_call_arguments.done", arguments=call.arguments, **named, **ids
    )
    done = {**item, "status": "completed", "arguments": call.arguments}
    await wire.send("response.output_item.done", item=done, **where)
    await wire.send("conversation.item.done", item=done)
    return done
