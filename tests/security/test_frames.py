"""What a WebSocket frame's size leads to: up to 64 KiB it is audio; above, up to the transport
limit, an ``error`` event and the session goes on; above the transport limit, close 1009."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voice_orchestrator.server import WS_MAX_MESSAGE_BYTES

from ..conftest import HANG_S
from .conftest import served

WS_PATH = "/api/v1/orchestrator/ws"


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(HANG_S):
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                event: dict[str, Any] = json.loads(message)
                return event


async def test_frames_up_to_the_transport_limit_get_an_error_and_the_session_goes_on() -> None:
    async with served() as server, connect(server.ws_url + WS_PATH) as ws:
        await ws.send('{"type": "session.start"}')
        assert (await next_event(ws))["type"] == "session.started"
        for size in (64 * 1024 + 2, WS_MAX_MESSAGE_BYTES):
            await ws.send(bytes(size))
            error = await next_event(ws)
            assert (error["type"], error["code"]) == ("error", "INVALID_AUDIO_FORMAT")
            await ws.send(" " * size)
            error = await next_event(ws)
            assert (error["type"], error["code"]) == ("error", "INVALID_REQUEST")
        await ws.send('{"type": "session.end"}')
        assert (await next_event(ws))["type"] == "session.ended"


async def test_a_frame_over_the_transport_limit_closes_the_socket_with_1009() -> None:
    assert WS_MAX_MESSAGE_BYTES == 1 << 20  # the figure the README gives
    async with served() as server, connect(server.ws_url + WS_PATH) as ws:
        await ws.send('{"type": "session.start"}')
        assert (await next_event(ws))["type"] == "session.started"
        await ws.send(bytes(WS_MAX_MESSAGE_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await next_event(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
