"""An empty variable counts as unset, and the recognizer's language is checked at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from voice_orchestrator.settings import Settings


def settings_from_env() -> Settings:
    return Settings(_env_file=None)


@pytest.mark.parametrize("empty", ["", "  "])
@pytest.mark.parametrize("stage", ["STT", "LLM", "TTS"])
def test_openai_with_an_empty_key_and_no_url_stops_start_up(
    stage: str, empty: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"ORCH_{stage}__PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", empty)
    monkeypatch.setenv("OPENAI_BASE_URL", empty)
    monkeypatch.setenv(f"ORCH_{stage}__API_KEY", empty)
    monkeypatch.setenv(f"ORCH_{stage}__BASE_URL", empty)
    with pytest.raises(ValidationError, match=f"ORCH_{stage}__API_KEY"):
        settings_from_env()


def test_an_empty_stage_key_falls_back_to_openai_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_LLM__PROVIDER", "openai")
    monkeypatch.setenv("ORCH_LLM__API_KEY", "")
    monkeypatch.setenv("ORCH_LLM__BASE_URL", "")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings = settings_from_env()
    assert settings.llm.api_key is not None
    assert settings.llm.api_key.get_secret_value() == "sk-test"
    assert settings.llm.base_url is None


def test_an_empty_key_with_a_base_url_is_a_keyless_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCH_STT__PROVIDER", "openai")
    monkeypatch.setenv("ORCH_STT__BASE_URL", "http://localhost:8001/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "")
    settings = settings_from_env()
    assert settings.stt.api_key is None
    assert settings.stt.base_url == "http://localhost:8001/v1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("en", "en"), ("FR", "fr"), ("en-US", "en"), ("pt_BR", "pt"), ("", None)],
)
def test_the_stt_language_is_a_whisper_code(
    value: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_STT__LANGUAGE", value)
    assert settings_from_env().stt.language == expected


@pytest.mark.parametrize("value", ["zz", "english", "x-klingon"])
def test_an_unknown_stt_language_stops_start_up(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_STT__LANGUAGE", value)
    with pytest.raises(ValidationError, match="ORCH_STT__LANGUAGE"):
        settings_from_env()
