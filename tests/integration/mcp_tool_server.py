"""A streamable-HTTP MCP server for the tool tests, run as a subprocess (the SDK's server sets up
logging of its own, which must not reach the test process). Prints its port once it serves.

Requests without ``Authorization: <TOOLS_TEST_AUTH>`` are refused with 401. It listens on
``TOOLS_TEST_PORT`` (default: any free port).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server: MCPServer[Any] = MCPServer("tool-tests", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
def forecast(city: str) -> str:
    """Tomorrow's weather in a city."""
    if city == "Atlantis":
        raise ToolError("no forecast for Atlantis")
    return f"Sunny in {city}, 21 degrees."


@server.tool()
async def wait_forever(marker: str = "") -> str:
    """Never answers; creates the file ``marker`` (when given) once called."""
    if marker:
        await asyncio.to_thread(Path(marker).touch)
    await asyncio.Event().wait()
    return ""


@server.tool()
def shout(text: str) -> str:
    """Upper-cases a text (left out by the tests' allow lists)."""
    return text.upper()


@server.tool(name="docs.search")
def docs_search(query: str) -> str:
    """A name the OpenAI tools format does not allow (a dot): never offered to the model."""
    return query


class RequireAuth:
    def __init__(self, app: Any, expected: str) -> None:
        self.app = app
        self.expected = expected.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers", []))
        if scope["type"] == "http" and headers.get(b"authorization") != self.expected:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


async def main() -> None:
    app = RequireAuth(server.streamable_http_app(), os.environ["TOOLS_TEST_AUTH"])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=int(os.environ.get("TOOLS_TEST_PORT", "0")),
        log_level="warning",
        lifespan="on",
    )
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    while not running.started:
        await asyncio.sleep(0.01)
    sys.stdout.write(f"{running.servers[0].sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    await task


if __name__ == "__main__":
    asyncio.run(main())
