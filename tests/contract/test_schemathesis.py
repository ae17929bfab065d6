"""Schemathesis over the app's own OpenAPI schema: generated requests against a real uvicorn
(in a thread of this process) over scripted fakes; no 5xx and responses as documented."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import checks

from voice_orchestrator.api.upload import DOCUMENTED_AUDIO_TYPES
from voice_orchestrator.main import create_app

from ..conftest import HANG_S, make_settings
from ..fakes import fake_providers

# Audio bodies are binary strings: sent as the bytes generated for them.
schemathesis.serializer.alias(list(DOCUMENTED_AUDIO_TYPES), "application/octet-stream")

APP = create_app(make_settings(max_concurrency=50), fake_providers())
schema = schemathesis.openapi.from_dict(APP.openapi())


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    config = uvicorn.Config(APP, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + HANG_S
    while not server.started and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=HANG_S)


# Every check but "schema-valid data is accepted": a body can match the schema (any binary
# file) and still not be audio, which is the contract's 400 INVALID_AUDIO_FORMAT.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, checks=CHECKS)
