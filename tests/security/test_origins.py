"""A WebSocket handshake from a foreign page is refused with 403; the service's own page, listed
origins and clients that send no Origin (not browsers) are let in."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from voice_orchestrator.api.origins import origin_allowed

from ..conftest import make_settings
from .conftest import served

WS_PATH = "/api/v1/orchestrator/ws"


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "svc.example:8000", True),  # not a browser
        ("http://svc.example:8000", "svc.example:8000", True),
        ("https://SVC.example", "svc.example", True),
        ("https://svc.example", "svc.example:443", True),
        ("http://svc.example", "svc.example:80", True),
        ("http://[::1]:8000", "[::1]:8000", True),
        ("https://app.example", "svc.example", True),  # listed
        ("https://app.example:8443", "svc.example", False),
        ("http://evil.example", "svc.example", False),
        ("http://svc.example:9000", "svc.example:8000", False),
        ("http://svc.example", "svc.example:8000", False),
        ("http://svc.example:443", "svc.example", False),
        ("http://svc.example.evil.example", "svc.example", False),
        ("null", "svc.example", False),  # sandboxed frames and local files
        ("file://svc.example", "svc.example", False),
        ("http://svc.example", None, False),
        ("", "svc.example", False),
    ],
)
def test_origin_rules(origin: str | None, host: str | None, allowed: bool) -> None:
    settings = make_settings(cors_origins="https://app.example")
    headers = {
        name: value for name, value in (("origin", origin), ("host", host)) if value is not None
    }
    assert origin_allowed(headers, settings) is allowed


def test_a_wildcard_allows_every_origin() -> None:
    assert origin_allowed({"origin": "http://evil.example"}, make_settings(cors_origins="*"))


async def test_the_handshake_from_a_foreign_page_is_refused_with_403() -> None:
    async with served(cors_origins="https://app.example") as server:
        url = server.ws_url + WS_PATH
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin=Origin("http://evil.example")):
                pass
        assert refused.value.response.status_code == 403
        own = Origin(f"http://{server.host}:{server.port}")
        for origin in (None, own, Origin("https://app.example")):
            async with connect(url, origin=origin) as ws:
                await ws.send('{"type": "session.start"}')
                assert '"session.started"' in str(await ws.recv())
