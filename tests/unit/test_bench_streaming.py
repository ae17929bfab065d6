"""The streamed-speech and WebSocket-deflate figures run (tiny), so they cannot rot. No timing
is asserted."""

from __future__ import annotations

from dataclasses import replace

from bench import tts_stream, ws_deflate
from bench.realtime import WS_PATH
from bench.run import STREAMED_TTS_UPSTREAM, _rest_turns
from bench.upstream import clean_env, server_process
from websockets.asyncio.client import connect


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


async def test_ws_deflate_figure_is_well_formed() -> None:
    figure = await ws_deflate.ws_deflate(100)
    assert figure["echo_deflate_on"]["negotiated"]
    assert not figure["echo_deflate_off"]["negotiated"]
    for rate in ("16k", "24k"):
        extension = figure[f"extension_{rate}"]
        assert extension["compress_us_per_frame"] > 0
        assert 0 < extension["wire_share"] < 1


async def test_served_websocket_offers_no_compression() -> None:
    # The client offers permessage-deflate; the service as ``serve`` runs it declines.
    with server_process(["bench.instant"], 1, clean_env()) as (url, _pid):
        async with connect(url.replace("http", "ws", 1) + WS_PATH) as ws:
            assert ws.protocol.extensions == []


async def test_first_clause_figure_is_well_formed() -> None:
    figure = await tts_stream.first_clause(1)
    # The clause leaves before the rest of a 31-token sentence has been generated.
    assert figure["first_audio_ms_first_clause"] < figure["first_audio_ms_whole_sentence"]
