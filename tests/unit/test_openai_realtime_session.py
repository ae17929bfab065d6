"""session.update in both dialects' shapes, and the effective session that is reported."""

from __future__ import annotations

import pytest

from voice_orchestrator.api.openai_realtime.session import SessionConfig
from voice_orchestrator.errors import InvalidRequest
from voice_orchestrator.settings import Settings

from ..conftest import make_settings


def config(settings: Settings) -> SessionConfig:
    return SessionConfig.initial("s1", "gpt-realtime", settings)


def test_the_defaults_are_server_vad_and_pcm16() -> None:
    settings = make_settings(vad_silence_ms=700)
    options = config(settings).options(settings)
    assert (options.input_rate, options.output_rate) == (24_000, 24_000)
    assert (options.server_vad, options.auto_respond, options.speak) == (True, True, True)
    assert options.vad_silence_ms == 700


def test_ga_and_beta_shapes_configure_the_same() -> None:
    settings = make_settings()
    ga = config(settings).updated(
        {
            "type": "realtime",
            "instructions": "Be brief.",
            "output_modalities": ["text"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 900},
                    "transcription": {"model": "whisper-1", "language": "fr"},
                },
                "output": {"format": {"type": "audio/pcma"}},
            },
        },
        settings,
    )
    beta = config(settings).updated(
        {
            "instructions": "Be brief.",
            "modalities": ["text"],
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_alaw",
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 900},
            "input_audio_transcription": {"model": "whisper-1", "language": "fr"},
        },
        settings,
    )
    assert ga.options(settings) == beta.options(settings)
    options = ga.options(settings)
    assert (options.input_rate, options.output_rate, options.speak) == (8_000, 8_000, False)
    assert options.vad_silence_ms == 900
    assert (ga.instructions, ga.language) == ("Be brief.", "fr")
    described = beta.describe("beta", "whisper-small")
    assert described["input_audio_transcription"]["model"] == "whisper-small"
    assert described["modalities"] == ["text"]


def test_manual_turns_and_responses_without_vad() -> None:
    settings = make_settings()
    manual = config(settings).updated({"turn_detection": None}, settings)
    assert not manual.options(settings).server_vad
    silent = config(settings).updated({"turn_detection": {"create_response": False}}, settings)
    options = silent.options(settings)
    assert (options.server_vad, options.auto_respond) == (True, False)
    semantic = config(settings).updated({"turn_detection": {"type": "semantic_vad"}}, settings)
    assert semantic.turn_detection is not None
    assert semantic.turn_detection["type"] == "server_vad"  # as it runs


def test_openai_voices_stand_for_the_engine_voice() -> None:
    embedded = make_settings()
    updated = config(embedded).updated({"voice": "alloy"}, embedded)
    assert (updated.voice, updated.tts_voice) == ("default", None)
    upstream = make_settings(tts={"provider": "openai", "api_key": "k", "model": "tts-1"})
    updated = config(upstream).updated({"voice": "alloy"}, upstream)
    assert (updated.voice, updated.tts_voice) == ("alloy", "alloy")


def test_fields_without_effect_are_kept_and_echoed() -> None:
    settings = make_settings()
    updated = config(settings).updated({"temperature": 0.6, "tracing": "auto"}, settings)
    assert updated.extra == {"temperature": 0.6, "tracing": "auto"}
    assert updated.describe("beta", "m")["temperature"] == 0.6
    assert "tracing" not in updated.describe("ga", "m")


@pytest.mark.parametrize(
    "session",
    [
        {"input_audio_format": "mp3"},
        {"audio": {"output": {"format": {"type": "audio/pcm", "rate": 16000}}}},
        {"output_modalities": ["video"]},
        {"turn_detection": {"type": "push_to_talk"}},
        {"turn_detection": {"silence_duration_ms": 5}},
        {"voice": ""},
    ],
)
def test_bad_values_are_refused_and_change_nothing(session: dict[str, object]) -> None:
    settings = make_settings()
    before = config(settings)
    with pytest.raises(InvalidRequest):
        before.updated(session, settings)
    assert before.options(settings) == config(settings).options(settings)
