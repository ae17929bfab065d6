"""Phone calls driven as the providers drive them: the Twilio webhook over HTTP, then the media
stream over a real WebSocket, with the scripted provider messages of ``telephony_clients``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voice_orchestrator.pipeline.turns import SessionRef, Turn

from ..conftest import HANG_S, QUESTION_WAV, SPEECH
from ..telephony_clients import (
    TwilioCall,
    dumps,
    silence_mulaw_frames,
    speech_mulaw_frames,
    speech_pcm,
)
from .conftest import LiveServer

VOICE_PATH = "/api/telephony/twilio/voice"
TWILIO_PATH = "/api/telephony/twilio/stream"
ACS_PATH = "/api/telephony/acs/stream"
WAIT_S = HANG_S  # a hang guard, never a pace
# A caller's question: a clip of ../shared when it is there, else the repository's own.
SPEECH_FILE = SPEECH / "13_LDC93S1_16k.wav"
if not SPEECH_FILE.exists():
    SPEECH_FILE = QUESTION_WAV
CALLER_SPEECH = speech_mulaw_frames(SPEECH_FILE)
CALLER_PAUSE = silence_mulaw_frames(1000)

Message = dict[str, Any]


def ws_url(server: LiveServer, path: str, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + path + query


def caller_pcm(rate: int) -> bytes:
    return speech_pcm(SPEECH_FILE, rate)


@dataclass
class Answer:
    """What the voice webhook answered: the stream URL and its ``<Parameter>``s."""

    status: int
    stream_url: str = ""
    parameters: dict[str, str] = field(default_factory=dict)


async def webhook(
    server: LiveServer, call: TwilioCall, headers: dict[str, str] | None = None, **form: str
) -> Answer:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_S) as http:
        response = await http.post(VOICE_PATH, data=call.webhook_form(**form), headers=headers)
    if response.status_code != 200:
        return Answer(response.status_code)
    assert response.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(response.text)
    assert root.tag == "Response"
    stream = root.find("./Connect/Stream")
    assert stream is not None
    parameters = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return Answer(200, stream.attrib["url"], parameters)


class Stream:
    """One provider socket: sends messages, reads the service's, keeps all it read."""

    def __init__(self, ws: ClientConnection, call: TwilioCall | None = None) -> None:
        self.ws = ws
        self.call = call or TwilioCall()
        self.received: list[Message] = []

    async def send(self, *messages: Message) -> None:
        for message in messages:
            await self.ws.send(dumps(message))

    async def next(self) -> Message:
        async with asyncio.timeout(WAIT_S):
            message: Message = json.loads(await self.ws.recv())
        self.received.append(message)
        return message

    async def until(self, check: Callable[[Message], bool]) -> Message:
        while not check(message := await self.next()):
            pass
        return message

    async def closed_code(self) -> int:
        """Reads to the end of the socket; the close code the service sent."""
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await self.next()
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code


def event(name: str) -> Callable[[Message], bool]:
    return lambda message: message.get("event") == name


def kind(name: str) -> Callable[[Message], bool]:
    return lambda message: message.get("kind") == name


@asynccontextmanager
async def stream(
    server: LiveServer, path: str, query: str = "", **kw: Any
) -> AsyncIterator[Stream]:
    async with connect(ws_url(server, path, query), max_size=2**22, **kw) as ws:
        yield Stream(ws)


@asynccontextmanager
async def twilio_call(server: LiveServer, call: TwilioCall | None = None) -> AsyncIterator[Stream]:
    """A call answered by the webhook, its stream connected and started with the TwiML's
    parameters."""
    call = call or TwilioCall()
    answer = await webhook(server, call)
    assert answer.status == 200
    async with stream(server, TWILIO_PATH) as phone:
        phone.call = call
        await phone.send(call.connected(), call.start(answer.parameters))
        yield phone


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Waits until ``check`` holds (state the service changes after its last message)."""
    async with asyncio.timeout(WAIT_S):
        while not await check():
            await asyncio.sleep(0.01)


async def history(server: LiveServer, owner: str, session_id: str) -> list[Turn]:
    services = server.app.state.services
    turns: list[Turn] = await services.turns.history(SessionRef(owner, session_id))
    return turns


async def all_released(server: LiveServer) -> bool:
    services = server.app.state.services
    return bool(services.open_sockets == 0 and services.slots.active == 0)


async def has_turns(server: LiveServer, owner: str, session_id: str, count: int = 1) -> bool:
    return len(await history(server, owner, session_id)) >= count
