"""MCP servers over streamable HTTP, through the official ``mcp`` SDK.

Each server's session is held open by a task of its own for the app's lifetime: the SDK's
transport lives in an anyio task group, which must be entered and left by one task, while
calls come from whichever turn needs them. A call that finds the connection closed (the server
went away) fails, and the next call opens a new session.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx2
import mcp_types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import CONNECTION_CLOSED, INVALID_REQUEST

from .base import ToolFailure, json_text
from .config import TOOL_NAME, McpServerConfig, ToolConfigError, safe_url

logger = logging.getLogger(__name__)

_TOOL_NAME = re.compile(TOOL_NAME)
# Tool listings are paged; a server that pages past this is not one to offer a model.
MAX_PAGES = 20
# Errors after which a session is not used again: the connection is gone, or the server no
# longer knows the session (the SDK's answer to a 404 from a restarted server).
SESSION_LOST = frozenset({CONNECTION_CLOSED, INVALID_REQUEST})
# A session's event stream may stay quiet between calls for this long (the SDK's default).
STREAM_READ_TIMEOUT_S = 300.0


def describe(error: BaseException) -> str:
    """What went wrong, without messages that may repeat URLs or headers: the class names of
    the leaf errors (an HTTP status when there is one)."""
    if isinstance(error, BaseExceptionGroup):
        return ", ".join(dict.fromkeys(describe(inner) for inner in error.exceptions))
    if isinstance(error, httpx2.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    if isinstance(error, MCPError):
        return f"MCPError: {error.error.message[:200]}"
    return type(error).__name__


class McpServer:
    """One configured MCP server: its session and the tools it offers."""

    def __init__(self, config: McpServerConfig) -> None:
        self._config = config
        self.url = safe_url(config.url)
        self._client: Client | None = None
        # The current session's task, and retired ones still closing.
        self._holders: set[asyncio.Task[None]] = set()
        # Set to end the current session (each session has its own).
        self._stop = asyncio.Event()
        self._closed = False
        self._connecting = asyncio.Lock()

    async def start(self) -> list[McpTool]:
        """Opens the session and lists the tools ``allow`` lets through. Raises
        ToolConfigError naming the server when it cannot be reached or lacks an allowed tool."""
        try:
            listed = await self._connect()
        except TimeoutError:
            raise ToolConfigError(
                f"MCP server {self.url} did not answer within {self._config.timeout_s:g} s"
            ) from None
        except Exception as e:
            raise ToolConfigError(f"MCP server {self.url} cannot be used: {describe(e)}") from None
        allow = self._config.allow
        offered = {tool.name for tool in listed}
        if allow is not None and (missing := [name for name in allow if name not in offered]):
            raise ToolConfigError(
                f"MCP server {self.url} does not offer the allowed tool(s) {', '.join(missing)}"
            )
        tools = []
        for tool in listed:
            if allow is not None and tool.name not in allow:
                continue
            if not _TOOL_NAME.match(tool.name):
                logger.warning(
                    "MCP tool skipped: its name is not a valid tool name",
                    extra={"server": self.url, "tool": tool.name[:100]},
                )
                continue
            tools.append(McpTool(self, tool, self._config.timeout_s))
        return tools

    async def _connect(self) -> list[mcp_types.Tool]:
        """Starts the holder task and waits until its session is open and listed."""
        ready: asyncio.Future[list[mcp_types.Tool]] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        holder = asyncio.create_task(self._hold(ready, self._stop), name=f"mcp {self.url}")
        self._holders.add(holder)
        holder.add_done_callback(self._holders.discard)
        try:
            async with asyncio.timeout(self._config.timeout_s):
                return await asyncio.shield(ready)
        except BaseException:
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
            raise

    async def _hold(self, ready: asyncio.Future[list[mcp_types.Tool]], stop: asyncio.Event) -> None:
        headers = {key: value.get_secret_value() for key, value in self._config.headers.items()}
        timeout = httpx2.Timeout(self._config.timeout_s, read=STREAM_READ_TIMEOUT_S)
        try:
            async with (
                httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
                Client(streamable_http_client(self._config.url, http_client=http)) as client,
            ):
                tools = await _list_tools(client)
                self._client = client
                ready.set_result(tools)
                await stop.wait()
        except Exception as e:
            if not ready.done():
                ready.set_exception(e)
            else:
                logger.warning(
                    "MCP session ended", extra={"server": self.url, "error": describe(e)}
                )
        finally:
            if not stop.is_set():  # else a newer session may be in place already
                self._client = None

    async def call(self, name: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        async with self._connecting:
            client = self._client
            if client is None:
                if self._closed:
                    raise ToolFailure("the tool box is closed")
                # The session ended (the server went away): open a new one.
                try:
                    await self._connect()
                except TimeoutError:
                    raise
                except Exception as e:
                    raise ToolFailure(f"the MCP server cannot be reached ({describe(e)})") from e
                client = self._client
            if client is None:  # pragma: no cover - the holder sets it before ``ready``
                raise ToolFailure("the MCP server cannot be reached")
        try:
            return await client.call_tool(name, arguments)
        except MCPError as e:
            if e.code in SESSION_LOST and self._client is client:
                logger.warning("MCP session lost", extra={"server": self.url, "code": e.code})
                self._client = None
                self._stop.set()
            raise

    async def aclose(self) -> None:
        self._closed = True
        self._client = None
        self._stop.set()
        await asyncio.gather(*self._holders, return_exceptions=True)


async def _list_tools(client: Client) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


class McpTool:
    """One tool of an MCP server, under the name the server gives it."""

    def __init__(self, server: McpServer, tool: mcp_types.Tool, timeout_s: float) -> None:
        self._server = server
        self.name = tool.name
        self.description = tool.description or tool.title or tool.name
        self.parameters = tool.input_schema
        self.timeout_s = timeout_s

    async def invoke(self, arguments: dict[str, Any]) -> str:
        try:
            result = await self._server.call(self.name, arguments)
        except MCPError as e:
            raise ToolFailure(e.error.message) from e
        text = result_text(result)
        if result.is_error:
            raise ToolFailure(text or "the tool reported an error")
        return text


def result_text(result: mcp_types.CallToolResult) -> str:
    """What the model is shown of a result: its text blocks, else its structured content;
    other blocks (images, audio, resources) are named only."""
    parts = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content]")
    has_text = any(isinstance(block, mcp_types.TextContent) for block in result.content)
    if not has_text and result.structured_content is not None:
        return json_text(result.structured_content)
    return "\n".join(parts)
