"""Security headers on the page and its static files, redirects that never echo the Host
header, and HEAD wherever GET works, through a real uvicorn."""

from __future__ import annotations

import httpx
import pytest

from .conftest import served

PAGE_PATHS = ("/", "/static/app.js", "/static/worklet.js", "/static/style.css")


async def test_the_page_and_static_files_carry_the_security_policy() -> None:
    async with served() as server, httpx.AsyncClient(base_url=server.url) as client:
        for path in PAGE_PATHS:
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.headers["x-content-type-options"] == "nosniff"
            policy = [p.strip() for p in response.headers["content-security-policy"].split(";")]
            assert "default-src 'self'" in policy
            assert "frame-ancestors 'none'" in policy
            assert "connect-src 'self'" in policy  # the API and its WebSocket, same origin only
            assert not any("unsafe" in p or "*" in p for p in policy), policy
        # The API answers JSON and is sniff-proof too.
        assert (await client.get("/health")).headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("path", "relative"), [("/static", "/static/"), ("/health/", "/health")])
async def test_redirects_do_not_echo_the_host_header(path: str, relative: str) -> None:
    async with served() as server, httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get(path, headers={"Host": "evil.example"})
        assert 300 <= response.status_code < 400
        assert response.headers["location"] == relative
        assert "evil" not in response.text


@pytest.mark.parametrize(
    "path",
    ["/health", "/", "/metrics", "/api/orchestrator/status", "/static/app.js", "/static/nothing"],
)
async def test_head_answers_wherever_get_does(path: str) -> None:
    async with served() as server, httpx.AsyncClient(base_url=server.url) as client:
        got = await client.get(path)
        head = await client.head(path)
    assert head.status_code == got.status_code
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    if path in ("/health", "/", "/static/app.js"):  # the same body, so the same length
        assert head.headers["content-length"] == got.headers["content-length"]
        assert int(got.headers["content-length"]) == len(got.content) > 0
