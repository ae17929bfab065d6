"""A spoken conversation over the WebSocket with the embedded engines: real speech in, the
real recognizer, model and voice, and a barge-in by a second spoken question. Every wait is
the suite's hang guard: the engines take as long as the machine needs."""

from __future__ import annotations

from voice_orchestrator.main import create_app
from voice_orchestrator.providers.base import Providers

from ..conftest import make_settings
from ..e2e.conftest import serve
from ..ws_client import QUESTION, SILENCE, client, start


async def test_spoken_conversation_with_barge_in(engines: Providers) -> None:
    app = create_app(make_settings(), engines)
    async with serve(app) as server, client(server.url) as c:
        await start(c, session_id="engines")
        await c.speak(QUESTION + SILENCE)
        transcript = await c.until("transcript.final")
        assert "capital" in transcript["text"].lower()
        assert "france" in transcript["text"].lower()
        done = await c.until("response.done")
        assert done["text"]
        audio = b"".join(item for item in c.received if isinstance(item, bytes))
        assert len(audio) / 2 / 22_050 > 0.5

        # Ask again and talk over the answer as soon as it starts.
        await c.speak()
        await c.until("response.audio.start")
        await c.speak(then_silence=False)
        interrupted = await c.until("response.interrupted")
        cut = await c.next()
        assert isinstance(cut, dict)
        assert cut["type"] == "response.done"
        assert cut["turn_id"] == interrupted["turn_id"]
        assert cut["interrupted"] is True
        await c.speak(SILENCE)
        third = await c.until("transcript.final")
        assert "capital" in third["text"].lower()
        await c.until("response.done")
    assert app.state.services.slots.active == 0
