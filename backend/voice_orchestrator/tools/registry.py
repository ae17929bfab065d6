"""The tool box: every configured tool under one name space, built once at start-up.

A call never raises for a tool's failure: an unknown name, arguments that break the schema, a
timeout or a failing tool all become an ``"error: ..."`` result the model can read and answer
from. Cancellation (barge-in, disconnect) propagates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx2

from ..settings import Settings
from .base import ArgumentCheck, Tool, ToolCallHook, ToolFailure, ToolResult, compile_schema
from .config import HttpToolConfig, McpServerConfig, ToolConfigError, load_tools_config
from .http import HttpTool

logger = logging.getLogger(__name__)

# The metrics and log label of a name the model made up: never a real tool name (parentheses
# are not allowed in those), and it keeps the label set bounded.
UNKNOWN_TOOL = "(unknown)"
CUT_MARK = "…[cut]"


def cap(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(CUT_MARK))] + CUT_MARK


class Toolbox:
    """The tools the model is offered, and the one way to call them."""

    def __init__(
        self,
        tools: Sequence[Tool],
        *,
        max_result_chars: int,
        on_call: ToolCallHook | None = None,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._tools: dict[str, Tool] = {}
        self._checks: dict[str, ArgumentCheck] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ToolConfigError(f"two tools are named {tool.name!r}")
            try:
                self._checks[tool.name] = compile_schema(tool.parameters)
            except ValueError as e:
                raise ToolConfigError(f"tool {tool.name!r}: parameters: {e}") from None
            self._tools[tool.name] = tool
        self._max_result_chars = max_result_chars
        self._on_call = on_call
        self._closers = list(closers)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def definitions(self) -> list[dict[str, Any]]:
        """The tools in the OpenAI chat ``tools`` format."""
        return [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in self._tools.values()
        ]

    async def call(self, name: str, arguments_json: str) -> ToolResult:
        """Calls the tool ``name`` with the model's arguments (JSON text)."""
        start = time.perf_counter()
        tool = self._tools.get(name)
        label = name if tool is not None else UNKNOWN_TOOL
        logger.debug("tool call started", extra={"tool": name, "arguments": arguments_json})
        outcome = "cancelled"
        try:
            outcome, content = await self._run(tool, name, arguments_json)
        finally:
            seconds = time.perf_counter() - start
            if self._on_call is not None:
                self._on_call(label, outcome, seconds)
            logger.info(
                "tool call finished",
                extra={"tool": label, "outcome": outcome, "ms": round(seconds * 1000, 1)},
            )
        content = cap(content, self._max_result_chars)
        logger.debug("tool call result", extra={"tool": label, "result": content})
        return ToolResult(ok=outcome == "ok", content=content, ms=seconds * 1000)

    async def _run(self, tool: Tool | None, name: str, arguments_json: str) -> tuple[str, str]:
        """(outcome, content) of one call."""
        if tool is None:
            return "unknown_tool", f"error: there is no tool named {name[:64]!r}"
        try:
            arguments = json.loads(arguments_json) if arguments_json.strip() else {}
        except ValueError:
            return "invalid_arguments", "error: the arguments are not valid JSON"
        if not isinstance(arguments, dict):
            return "invalid_arguments", "error: the arguments must be a JSON object"
        if (problem := self._checks[tool.name](arguments)) is not None:
            return "invalid_arguments", f"error: invalid arguments: {problem}"
        try:
            async with asyncio.timeout(tool.timeout_s):
                return "ok", await tool.invoke(arguments)
        except TimeoutError:
            return "timeout", f"error: the tool did not answer within {tool.timeout_s:g} s"
        except ToolFailure as e:
            return "error", f"error: {e}"
        except Exception as e:
            # Only the class: a message could carry what the tool was sent.
            logger.warning(
                "tool failed unexpectedly", extra={"tool": name, "error": type(e).__name__}
            )
            return "error", "error: the tool failed"

    async def aclose(self) -> None:
        """Closes the HTTP client and the MCP sessions."""
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            await close()


async def load_toolbox(settings: Settings, on_call: ToolCallHook | None = None) -> Toolbox | None:
    """Reads ORCH_TOOLS_FILE and lists each MCP server's tools; None without a tools file.

    Raises ToolConfigError for a bad file, a missing environment variable, an MCP server that
    cannot be reached or does not offer an allowed tool, or two tools of one name."""
    if not settings.tools_file:
        return None
    config = await asyncio.to_thread(load_tools_config, settings.tools_file)
    tools: list[Tool] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        http_entries = [entry for entry in config.tools if isinstance(entry, HttpToolConfig)]
        if http_entries:
            client = httpx2.AsyncClient(follow_redirects=False)
            closers.append(client.aclose)
            tools.extend(HttpTool(entry, client) for entry in http_entries)
        for entry in config.tools:
            if isinstance(entry, McpServerConfig):
                # Imported only when used: the SDK takes about a second to import.
                from .mcp_server import McpServer

                server = McpServer(entry)
                closers.append(server.aclose)
                tools.extend(await server.start())
        try:
            toolbox = Toolbox(
                tools,
                max_result_chars=settings.max_tool_result_chars,
                on_call=on_call,
                closers=closers,
            )
        except ToolConfigError as e:
            raise ToolConfigError(f"ORCH_TOOLS_FILE {settings.tools_file}: {e}") from None
    except BaseException:
        for close in reversed(closers):
            await close()
        raise
    logger.info("tools loaded", extra={"tools": toolbox.names})
    return toolbox
