"""Answer formats: the CPU each format's streaming encoder spends per second of speech (a ratio
to real time: 0.01 means one core encodes a hundred answers at once) and the bytes it sends per
second of speech. The input is the test question (speech at a TTS engine's 22.05 kHz), handed
over in sentence-sized pieces as a streamed answer is."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from voice_orchestrator.audio import Audio, parse_wav
from voice_orchestrator.encoding import OutputFormat, StreamEncoder

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
