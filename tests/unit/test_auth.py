"""ORCH_API_KEYS protects /api routes; the rest stays open."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from voice_orchestrator.settings import Settings

from ..conftest import AppClient, make_settings
from ..fakes import make_wav

URL = "/api/orchestrator/dialogue"
WAV = {"content-type": "audio/wav"}


def test_keys_are_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make_settings().api_keys == []
    monkeypatch.setenv("ORCH_API_KEYS", " k1, k2 ,,")
    settings = Settings(_env_file=None)
    assert [k.get_secret_value() for k in settings.api_keys] == ["k1", "k2"]
    assert "k1" not in repr(settings)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": "Basic a2V5LW9uZQ=="},
        {"x-api-key": "key-on"},
        {"authorization": "Bearer "},
    ],
)
async def test_missing_or_wrong_key_is_401(app_client: AppClient, headers: dict[str, str]) -> None:
    async with app_client(api_keys=[SecretStr("key-one"), SecretStr("key-two")]) as client:
        response = await client.post(URL, content=make_wav(1.0), headers={**WAV, **headers})
    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["code"], error["stage"]) == ("UNAUTHORIZED", "auth")
    assert error["request_id"] == response.headers["x-request-id"]
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("headers", [{"authorization": "Bearer key-two"}, {"x-api-key": "key-one"}])
async def test_right_key_passes(app_client: AppClient, headers: dict[str, str]) -> None:
    async with app_client(api_keys=[SecretStr("key-one"), SecretStr("key-two")]) as client:
        response = await client.post(URL, content=make_wav(1.0), headers={**WAV, **headers})
        docs = await client.get("/openapi.json")
    assert response.status_code == 200
    assert docs.status_code == 200
