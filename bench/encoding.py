"""Answer formats: the CPU each format's streaming encoder spends per second of speech (a ratio
to real time: 0.01 means one core encodes a hundred answers at once) and the bytes it sends per
second of speech. The input is the test question (speech at a TTS engine's 22.05 kHz), handed
over in sentence-sized pieces as a streamed answer is."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.conftest import serve
from tests.fakes import make_wav

from voice_orchestrator.audio import Audio, parse_wav
from voice_orchestrator.encoding import OutputFormat, StreamEncoder
from voice_orchestrator.main import create_app

QUESTION = Path(__file__).resolve().parents[1] / "tests" / "assets" / "question.wav"
PIECE_S = 0.8


def _stream(audio: Audio, fmt: OutputFormat) -> int:
    """Encodes ``audio`` piece by piece; returns the bytes produced."""
    encoder = StreamEncoder(fmt, audio.sample_rate)
    step = int(PIECE_S * audio.sample_rate) * 2
    sent = 0
    for start in range(0, len(audio.pcm), step):
        sent += len(encoder.encode(Audio(audio.pcm[start : start + step], audio.sample_rate)))
    return sent + len(encoder.finish())


def encoding(repeats: int) -> dict[str, Any]:
    audio = parse_wav(QUESTION.read_bytes())
    cpu_per_s: dict[str, float] = {}
    bytes_per_s: dict[str, int] = {}
    for fmt in OutputFormat:
        size = _stream(audio, fmt)  # warm: codec set-up paths, page tables
        start = time.process_time()
        for _ in range(repeats):
            _stream(audio, fmt)
        cpu = (time.process_time() - start) / repeats
        cpu_per_s[fmt.value] = round(cpu / audio.duration_s, 5)
        bytes_per_s[fmt.value] = round(size / audio.duration_s)
    return {
        "figure": "answer_encoding",
        "speech_s": round(audio.duration_s, 2),
        "input_rate": audio.sample_rate,
        "repeats": repeats,
        "cpu_s_per_speech_s": cpu_per_s,
        "bytes_per_speech_s": bytes_per_s,
        "note": "one streamed answer per format, 0.8-s pieces; CPU of this process only",
    }


async def streamed_first_audio(runs: int) -> dict[str, Any]:
    """First audio of the streamed REST answer in each format, same scripted stages, one run,
    and the answer's size. The service sends nothing before it has audio, and its first piece
    carries the container's header with the first encoded audio (Ogg pages, MP3 or ADTS
    frames), so the first piece received is the first audio a player can use."""
    from bench.run import LIMIT_MS, URL, scripted, settings

    body = make_wav(1.0)
    result: dict[str, Any] = {"figure": "streamed_formats", "runs": runs, "limit_ms": LIMIT_MS}
    async with (
        serve(create_app(settings(), scripted())) as server,
        httpx.AsyncClient(base_url=server.url, timeout=60) as client,
    ):
        for fmt in ("wav", "opus", "mp3", "aac"):
            firsts: list[float] = []
            size = 0
            for _ in range(runs):
                start = time.perf_counter()
                first = None
                size = 0
                async with client.stream(
                    "POST", URL, params={"stream": "true", "response_format": fmt},
                    content=body, headers={"content-type": "audio/wav"},
                ) as response:  # fmt: skip
                    response.raise_for_status()
                    async for chunk in response.aiter_raw():
                        size += len(chunk)
                        if first is None:
                            first = time.perf_counter() - start
                firsts.append((first or 0.0) * 1000)
            result[f"{fmt}_first_over_ms"] = round(statistics.median(firsts) - LIMIT_MS, 1)
            result[f"{fmt}_bytes"] = size
    return result
