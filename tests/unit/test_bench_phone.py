"""The phone benchmark runs (one call each), so it cannot rot. No timing is asserted."""

from __future__ import annotations

from bench import phone
from bench.run import LIMIT_MS, STT_S, scripted


async def test_phone_figures_are_well_formed() -> None:
    first = await phone.phone_first_audio(1, scripted, LIMIT_MS - STT_S * 1000)
    # Nothing is answered before the caller's silence ends the turn.
    assert first["speech_end_to_first_media_ms"] > first["vad_silence_ms"]
    assert "websocket_turn_end_to_first_audio_over_limit_ms" in first
    barge = await phone.phone_barge_in(1)
    # The clear follows the speech, and no answer frame follows the clear.
    assert barge["voiced_to_clear_ms"] > 0
    assert barge["voiced_to_last_media_ms"] <= barge["voiced_to_clear_ms"]
