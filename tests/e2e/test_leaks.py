"""Nothing secret in the logs: turns with a known key, transcript and card number over REST
and the WebSocket, every log line captured at DEBUG through the service's own handler."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect

from voice_orchestrator.observability import configure_logging

from ..fakes import FakeLLM, FakeSTT, fake_providers, make_wav
from ..ws_client import Client
from .conftest import ServerFactory

KEY = "vo-test-key-5f1c9a"
SAID = "my card is 4111 1111 1111 1111 and the secret word is pineapple"
REPLY = "I will remember pineapple and 4111 1111 1111 1111. Goodbye."
SECRETS = ("pineapple", "4111", "secret word")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every line the service logs, as JSON, at DEBUG."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream)
    # The test's own WebSocket client logs what it sends; it is not the service.
    client_logger = logging.getLogger("websockets.client")
    client_logger.propagate = False
    try:
        yield stream
    finally:
        client_logger.propagate = True
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])


async def test_no_transcript_digits_or_key_in_the_logs(
    live_server: ServerFactory, captured: io.StringIO
) -> None:
    providers = fake_providers(stt=FakeSTT(SAID), llm=FakeLLM([REPLY]))
    async with live_server(providers, api_keys=KEY) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            ok = await client.post(
                "/api/orchestrator/dialogue",
                content=make_wav(1.0),
                params={"session_id": "leaky"},
                headers={"content-type": "audio/wav", "authorization": f"Bearer {KEY}"},
            )
            assert ok.status_code == 200
            wrong = await client.post(
                "/api/orchestrator/dialogue",
                content=make_wav(1.0),
                headers={"content-type": "audio/wav", "x-api-key": KEY + "-wrong"},
            )
            assert wrong.status_code == 401
            assert KEY not in wrong.text
        base = server.url.replace("http://", "ws://") + "/api/v1/orchestrator/ws"
        for url, headers in (
            (f"{base}?api_key={KEY}", {}),
            (base, {"Authorization": f"Bearer {KEY}"}),
            (base, {"X-API-Key": KEY}),
        ):
            async with connect(url, additional_headers=headers) as ws:
                c = Client(ws)
                await c.speak()
                await c.until("response.done")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert any(line["message"] == "dialogue turn finished" for line in lines)
    assert any(line.get("logger") == "uvicorn.access" or "access" in str(line) for line in lines)
    for line in lines:
        text = json.dumps(line)
        assert KEY not in text, text
        if line["level"] != "DEBUG":
            for secret in SECRETS:
                assert secret not in text.lower(), text
