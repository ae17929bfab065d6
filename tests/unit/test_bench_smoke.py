"""The benchmark code runs (tiny sizes), so it cannot rot. No timing is asserted."""

from __future__ import annotations

from bench import engines, load, memory, profile, realtime
from bench.run import LIMIT_MS, first_audio, first_audio_openai, http_cpu, pipeline_cpu, scripted


async def test_bench_figures_are_well_formed() -> None:
    assert LIMIT_MS == 1125
    for result in (await pipeline_cpu(3), await http_cpu(2)):
        assert result["cpu_ms"] > 0
        assert result["wall_ms"] > 0
    figure = await first_audio(1)
    assert figure["figure"] == "first_audio_over_limit"
    # The pipelined turn starts speaking before a sequential one would.
    assert figure["rest_stream_first_over_ms"] < figure["sequential_first_over_ms"]
    upstream = await first_audio_openai(1)
    # Nothing speaks before the scripted latencies allow.
    assert upstream["rest_stream_first_over_ms"] > 0
    assert upstream["direct_upstream_floor_over_ms"] > 0


async def test_realtime_figures_are_well_formed() -> None:
    figure = await realtime.ws_first_audio(1, scripted, LIMIT_MS)
    assert figure["ws_commit_first_over_ms"] > -LIMIT_MS
    openai_figure = await realtime.openai_realtime_first_audio(1, scripted, LIMIT_MS)
    assert openai_figure["commit_to_first_audio_delta_over_ms"] > -LIMIT_MS
    barge = await realtime.barge_in(1)
    # The interruption is seen after the speech started, and no frame follows the event.
    assert barge["voiced_to_interrupted_event_ms"] > 0
    assert barge["voiced_to_last_audio_frame_ms"] <= barge["voiced_to_interrupted_event_ms"]
    # The audio paused at the onset, before the speech was confirmed.
    assert barge["voiced_to_paused_event_ms"] < barge["voiced_to_interrupted_event_ms"]
    cough = await realtime.false_alarm(1)
    assert cough["answers_completed"] == 1
    assert cough["paused_for_ms"] is not None


async def test_process_figures_are_well_formed() -> None:
    cost = await engines.adapter_cost(3)
    assert cost["cpu_ms_per_turn_openai_adapters"] > 0
    assert cost["llm_reply_cpu_ms_adapter"] > 0
    for providers in ("instant", "openai"):
        figure = await load.throughput(2, 1.0, providers=providers)
        assert figure["statuses"].get("200", 0) > 0, figure
        assert set(figure["statuses"]) == {"200"}
        assert figure["transport_errors"] == {}
        assert figure["service_cpu_ms_per_request"] > 0
    mem = await memory.memory(20)
    assert {"growth_mb", "peak_for_60s_input_mb"} <= mem.keys()


async def test_load_only_sees_200_and_429() -> None:
    result = await load.load(1.0, slots=2)
    assert result["ok"], result
    assert set(result["statuses"]) <= {"200", "429"}
    assert result["slots_active_after"] == 0


def test_profile_shares_by_package() -> None:
    folded = "\n".join([
        "main (bench/x.py:1);dialogue (voice_orchestrator/api/dialogue.py:9) 3",
        "main (bench/x.py:1);send (httpx2/_client.py:5) 6",
        "main (bench/x.py:1);_worker (concurrent/futures/thread.py:81) 50",
        "main (bench/x.py:1);odd (somewhere.py:2) 1",
    ])  # fmt: skip
    summary = profile.summarize(folded)
    assert summary["samples"] == 10  # the idle worker thread is left out
    shares = summary["self_share_by_package"]
    assert shares["HTTP client (httpx2, httpcore2, h11, anyio)"] == 0.6
    assert shares["voice_orchestrator"] == 0.3
    assert summary["top_other_leaves"] == ["odd (somewhere.py:2)"]


async def test_profile_samples_the_service() -> None:
    figure = await profile.profile("instant", 1.0, concurrency=2)
    assert figure["samples"] > 0
    assert figure["self_share_by_package"].get("voice_orchestrator", 0) > 0


async def test_conversations_per_process_figure_is_well_formed() -> None:
    from bench import conversations

    figure = await conversations.conversations_per_process((3,), 6.0)
    step = figure["steps"][0]
    assert step["conversations"] == 3
    assert step["frames"] > 0  # answers were played to every listener
    assert step["late_p99_ms"] >= 0
