"""The OpenAI Realtime socket with the embedded engines, driven by the official SDK: real
speech in through server VAD, the real recognizer, model and voice, audio deltas out."""

from __future__ import annotations

import pytest

from voice_orchestrator.main import create_app
from voice_orchestrator.providers.base import Providers

from ..conftest import make_settings
from ..e2e.conftest import serve
from ..e2e.test_openai_realtime import QUESTION, RATE, append, audio_of, of, realtime, until


@pytest.mark.engines
async def test_spoken_turn_with_the_embedded_engines(engines: Providers) -> None:
    app = create_app(make_settings(), engines)
    async with serve(app) as server, realtime(server) as connection:
        await until(connection, "session.created")
        # OpenAI's voice names stand for the engine's own voice.
        await connection.session.update(
            session={
                "type": "realtime",
                "audio": {
                    "input": {"transcription": {"model": "whisper-1"}},
                    "output": {"voice": "alloy"},
                },
            }
        )
        await until(connection, "session.updated")
        await append(connection, QUESTION + bytes(RATE * 2))
        events = await until(connection, "response.done")
    transcript = of(events, "conversation.item.input_audio_transcription.completed")[0].transcript
    assert "capital" in transcript.lower()
    assert "france" in transcript.lower()
    done = events[-1].response
    assert done.status == "completed"
    assert done.output[0].content[0].transcript
    assert len(audio_of(events)) / 2 / RATE > 0.5
    assert app.state.services.slots.active == 0
