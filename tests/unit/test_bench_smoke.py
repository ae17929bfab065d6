"""The benchmark code runs (tiny sizes), so it cannot rot. No timing is asserted."""

from __future__ import annotations

from bench.run import LIMIT_MS, first_audio, http_cpu, pipeline_cpu


async def test_bench_figures_are_well_formed() -> None:
    assert LIMIT_MS == 1125
    for result in (await pipeline_cpu(3), await http_cpu(2)):
        assert result["cpu_ms"] > 0
        assert result["wall_ms"] > 0
    figure = await first_audio(1)
    assert figure["figure"] == "first_audio_over_limit"
    # The pipelined turn starts speaking before a sequential one would.
    assert figure["rest_stream_first_over_ms"] < figure["sequential_first_over_ms"]
