"""First audio with a speech upstream that streams its body, as real TTS servers do: the first
piece after the scripted delay, the rest at a multiple of real time.

The service (its own process, real adapters) against the same calls made directly: the direct
client's first audio byte is the floor; the end of that body is when the first audio would
leave if the service read speech bodies whole.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from tests.e2e.conftest import serve
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, fake_providers, make_wav, tone

from bench.upstream import Latency, service_process, upstream_process
from voice_orchestrator.audio import encode_wav
from voice_orchestrator.main import create_app
from voice_orchestrator.settings import Settings

RestTurns = Callable[[str, int], Awaitable[tuple[list[float], list[float], list[float]]]]
WAV_HEADER_BYTES = 44


def limit_ms(latency: Latency) -> float:
    """The physical limit: transcription, the first sentence's tokens, the first speech byte."""
    tokens_ms = latency.first_token_ms + (latency.words - 1) * latency.token_ms
    return latency.stt_ms + tokens_ms + latency.tts_ms


async def direct(base: str, body: bytes, response_format: str) -> tuple[float, float]:
    """First audio byte and end of the speech body (ms) of the upstream called directly,
    pipelined: the transcription, the reply until its first sentence, that sentence's speech."""
    auth = {"Authorization": "Bearer bench"}
    header = WAV_HEADER_BYTES if response_format == "wav" else 0
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as upstream:
        await upstream.get("/models/m")  # connect before the clock starts, as the service has
        start = time.perf_counter()
        files = {"file": ("audio.wav", body, "audio/wav")}
        stt = await upstream.post("/audio/transcriptions", files=files, data={"model": "m"})
        chat = {"model": "m", "stream": True,
                "messages": [{"role": "user", "content": stt.json()["text"]}]}  # fmt: skip
        sentence = ""
        async with upstream.stream("POST", "/chat/completions", json=chat) as reply:
            async for line in reply.aiter_lines():
                if line.startswith("data: {"):
                    sentence += json.loads(line[6:])["choices"][0]["delta"]["content"]
                    if sentence.endswith("."):
                        break
        speech = {"model": "m", "voice": "alloy", "input": sentence,
                  "response_format": response_format}  # fmt: skip
        first = None
        received = 0
        async with upstream.stream("POST", "/audio/speech", json=speech) as audio:
            audio.raise_for_status()
            async for chunk in audio.aiter_raw():
                received += len(chunk)
                if first is None and received > header:
                    first = time.perf_counter() - start
        return (first or 0.0) * 1000, (time.perf_counter() - start) * 1000


async def first_audio_streamed_tts(
    runs: int, latency: Latency, rest_turns: RestTurns
) -> dict[str, Any]:
    """Client-side first audio of streamed REST turns minus the limit, for WAV and PCM speech
    bodies, against the direct calls' first byte and body end. ``rest_turns(url, runs)`` is
    ``bench.run``'s turn runner (first and last audio, header times)."""
    limit = limit_ms(latency)
    body = make_wav(1.0)
    figure: dict[str, Any] = {
        "figure": "first_audio_over_limit_streamed_tts",
        "limit_ms": limit,
        "runs": runs,
        "tts_first_byte_ms": latency.tts_ms,
        "tts_rate_x": latency.tts_rate_x,
        "tts_piece_ms": latency.tts_piece_ms,
    }
    with upstream_process(latency) as base:
        for response_format in ("wav", "pcm"):
            env = {"ORCH_TTS__RESPONSE_FORMAT": response_format}
            with service_process(base, **env) as (url, _):
                firsts, _lasts, _headers = await rest_turns(url, runs)
            calls = [await direct(base, body, response_format) for _ in range(runs)]
            first = statistics.median(firsts)
            floor = statistics.median(call[0] for call in calls)
            whole = statistics.median(call[1] for call in calls)
            figure |= {
                f"{response_format}_rest_stream_first_over_ms": round(first - limit, 1),
                f"{response_format}_direct_first_byte_over_ms": round(floor - limit, 1),
                f"{response_format}_direct_body_end_over_ms": round(whole - limit, 1),
                f"{response_format}_orchestrator_added_ms": round(first - floor, 1),
            }
    figure["target_over_ms"] = 10.0
    return figure


async def first_clause(runs: int, min_words: int = 6) -> dict[str, Any]:
    """What speaking the first clause of a long first sentence saves: a 30-word first sentence
    with a comma after 8 words, first audio of the streamed REST answer with
    ``ORCH_TTS__FIRST_CLAUSE_MIN_WORDS`` off and on (scripted stages, in one run)."""
    words = ["word"] * 30
    words[7] += ","
    tokens = [(" " if i else "") + w for i, w in enumerate(words)] + [" end."]
    body = encode_wav(tone(1.0, 16_000))
    results: dict[str, float] = {}
    for label, setting in (("off", None), ("on", min_words)):
        providers = fake_providers(
            FakeSTT(delay_s=0.2), FakeLLM(tokens, first_token_s=0.3, token_s=0.025),
            FakeTTS(delay_s=0.15),
        )  # fmt: skip
        settings = Settings(_env_file=None, tts={"first_clause_min_words": setting})
        firsts: list[float] = []
        async with serve(create_app(settings, providers)) as server, httpx.AsyncClient() as c:
            for _ in range(runs):
                start = time.perf_counter()
                async with c.stream(
                    "POST", f"{server.url}/api/orchestrator/dialogue", params={"stream": "true"},
                    content=body, headers={"content-type": "audio/wav"}, timeout=120,
                ) as response:  # fmt: skip
                    async for _ in response.aiter_bytes():
                        firsts.append((time.perf_counter() - start) * 1000)
                        break
        results[label] = statistics.median(firsts)
    return {
        "figure": "first_clause",
        "runs": runs,
        "first_sentence_words": len(tokens),
        "first_audio_ms_whole_sentence": round(results["off"], 1),
        "first_audio_ms_first_clause": round(results["on"], 1),
        "saved_ms": round(results["off"] - results["on"], 1),
        "note": "with a model at 40 tokens/s the clause saves the time of the rest of the sentence",
    }
