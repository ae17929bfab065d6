"""The streamed-speech figure runs (tiny), so it cannot rot. No timing is asserted."""

from __future__ import annotations

from dataclasses import replace

from bench import tts_stream
from bench.run import STREAMED_TTS_UPSTREAM, _rest_turns


async def test_streamed_tts_figure_is_well_formed() -> None:
    # One short sentence, spoken fast: the figure's shape, not its numbers.
    latency = replace(STREAMED_TTS_UPSTREAM, sentences=1, words=4, tts_rate_x=20.0)
    figure = await tts_stream.first_audio_streamed_tts(1, latency, _rest_turns)
    assert figure["limit_ms"] == tts_stream.limit_ms(latency)
    for response_format in ("wav", "pcm"):
        # Nothing speaks before the scripted latencies allow, and the direct client's body
        # ends after its first byte.
        first_byte = figure[f"{response_format}_direct_first_byte_over_ms"]
        assert figure[f"{response_format}_rest_stream_first_over_ms"] > 0
        assert first_byte > 0
        assert figure[f"{response_format}_direct_body_end_over_ms"] > first_byte
