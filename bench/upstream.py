"""An OpenAI-compatible upstream on loopback for benchmarks and load: transcriptions, streamed
chat completions and speech, with scripted latencies, so the service's real adapters, HTTP
clients and retries are part of every figure.

Speech comes whole after ``tts_ms``, or with ``tts_stream`` as a real server streams it: the
first piece after ``tts_ms``, the rest in pieces of ``tts_piece_ms`` of audio made at
``tts_rate_x`` times real time (a WAV with unknown sizes, or raw PCM, as the request asks).

Run alone: ``python -m bench.upstream --port 8900 [--stt-ms 200 --first-token-ms 300 ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from voice_orchestrator.audio import Audio, wav_header

REPO = Path(__file__).resolve().parents[1]
SPEECH_RATE = 24_000


@dataclass(frozen=True)
class Latency:
    stt_ms: float = 0.0
    first_token_ms: float = 0.0
    token_ms: float = 0.0
    tts_ms: float = 0.0
    sentences: int = 1
    words: int = 8
    tts_stream: bool = False
    tts_rate_x: float = 4.0
    tts_piece_ms: float = 100.0

    def args(self) -> list[str]:
        """The command-line options that recreate this latency in ``main``."""
        return ["--stt-ms", str(self.stt_ms), "--first-token-ms", str(self.first_token_ms),
                "--token-ms", str(self.token_ms), "--tts-ms", str(self.tts_ms),
                "--sentences", str(self.sentences), "--words", str(self.words),
                "--tts-rate-x", str(self.tts_rate_x), "--tts-piece-ms", str(self.tts_piece_ms),
                *(["--tts-stream"] if self.tts_stream else [])]  # fmt: skip


@functools.lru_cache(maxsize=64)
def speech_pcm(text: str) -> bytes:
    """A tone as long as the text would take to say (60 ms a character), 16-bit at 24 kHz;
    made once a text, so that the upstream's own work does not count as latency."""
    t = np.arange(int(max(0.1, 0.06 * len(text)) * SPEECH_RATE)) / SPEECH_RATE
    return Audio.from_float32(0.2 * np.sin(2 * math.pi * 220 * t), SPEECH_RATE).pcm


async def speech_pieces(pcm: bytes, header: bytes, latency: Latency) -> AsyncIterator[bytes]:
    """Piece k is due ``tts_ms + k * tts_piece_ms / tts_rate_x`` after the request, on an
    absolute schedule (timer overshoot does not add up)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    piece = max(1, int(SPEECH_RATE * latency.tts_piece_ms / 1000)) * 2
    for k, offset in enumerate(range(0, len(pcm), piece)):
        due = start + (latency.tts_ms + k * latency.tts_piece_ms / latency.tts_rate_x) / 1000
        await asyncio.sleep(max(0.0, due - loop.time()))
        yield (header if k == 0 else b"") + pcm[offset : offset + piece]


def create_upstream(latency: Latency) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models/{model}")
    async def model(model: str) -> JSONResponse:
        return JSONResponse({"id": model, "object": "model", "created": 0, "owned_by": "bench"})

    @app.post("/v1/audio/transcriptions")
    async def transcribe(request: Request) -> JSONResponse:
        await request.body()
        await asyncio.sleep(latency.stt_ms / 1000)
        return JSONResponse({"text": "What is the capital of France?"})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> StreamingResponse:
        await request.body()

        async def events() -> AsyncIterator[bytes]:
            # Token i is due first_token + i * token after the request: timer overshoot does
            # not add up over the reply, so the scripted latencies are the ones delivered.
            loop = asyncio.get_running_loop()
            start = loop.time()
            first = True
            for i in range(latency.sentences * latency.words):
                due = start + (latency.first_token_ms + i * latency.token_ms) / 1000
                await asyncio.sleep(max(0.0, due - loop.time()))
                last_word = i % latency.words == latency.words - 1
                word = ("" if first else " ") + ("end." if last_word else "word")
                first = False
                chunk = {
                    "id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                    "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                }  # fmt: skip
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Response:
        body = await request.json()
        pcm = speech_pcm(str(body["input"]))
        wav = body.get("response_format", "wav") == "wav"
        media_type = "audio/wav" if wav else "audio/pcm"
        if latency.tts_stream:
            header = wav_header(SPEECH_RATE) if wav else b""
            return StreamingResponse(speech_pieces(pcm, header, latency), media_type=media_type)
        await asyncio.sleep(latency.tts_ms / 1000)
        header = wav_header(SPEECH_RATE, len(pcm)) if wav else b""
        return Response(header + pcm, media_type=media_type)

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@contextmanager
def upstream_process(latency: Latency) -> Iterator[str]:
    """Runs the upstream in its own process; yields its OpenAI base URL."""
    port = free_port()
    command = [sys.executable, "-m", "bench.upstream", "--port", str(port), *latency.args()]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the service's settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "OPENAI_"))}
    env.update(extra)
    return env


def service_env(base_url: str, **extra: str) -> dict[str, str]:
    """Environment for ``voice-orchestrator serve`` with every stage on the upstream."""
    env = clean_env(OPENAI_BASE_URL=base_url, OPENAI_API_KEY="bench", ORCH_LOG_LEVEL="WARNING")
    for stage in ("STT", "LLM", "TTS"):
        env[f"ORCH_{stage}__PROVIDER"] = "openai"
    env.update(extra)
    return env


@contextmanager
def server_process(
    module: list[str], workers: int, env: dict[str, str]
) -> Iterator[tuple[str, int]]:
    """Runs ``python -m MODULE... --port P --workers N``; yields its URL and the pid of its
    (main) process."""
    port = free_port()
    command = [sys.executable, "-m", *module, "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)


def service_process(
    base_url: str, *, workers: int = 1, **extra: str
) -> AbstractContextManager[tuple[str, int]]:
    """Runs the service on the upstream; yields its URL and the pid of its (main) process."""
    return server_process(["voice_orchestrator", "serve"], workers, service_env(base_url, **extra))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stt-ms", type=float, default=0.0)
    parser.add_argument("--first-token-ms", type=float, default=0.0)
    parser.add_argument("--token-ms", type=float, default=0.0)
    parser.add_argument("--tts-ms", type=float, default=0.0)
    parser.add_argument("--sentences", type=int, default=1)
    parser.add_argument("--words", type=int, default=8)
    parser.add_argument("--tts-stream", action="store_true", help="stream speech in pieces")
    parser.add_argument("--tts-rate-x", type=float, default=4.0, help="times real time")
    parser.add_argument("--tts-piece-ms", type=float, default=100.0, help="audio a piece")
    args = parser.parse_args()
    latency = Latency(args.stt_ms, args.first_token_ms, args.token_ms, args.tts_ms,
                      args.sentences, args.words, args.tts_stream, args.tts_rate_x,
                      args.tts_piece_ms)  # fmt: skip
    uvicorn.run(create_upstream(latency), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
