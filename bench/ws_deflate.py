"""Per-message deflate on the WebSocket's binary PCM frames: what it costs in CPU and what it
saves on the wire.

Two measurements on real speech in 20-ms frames (``../shared/data/speech`` and the test
question):
- the extension alone (websockets' ``PerMessageDeflate`` with the settings uvicorn's server
  negotiates with a default client): CPU per frame to compress and to decompress, and the
  compressed size, at 16 kHz (the microphone) and 24 kHz (speech out);
- end to end: a WebSocket echo served by uvicorn (the protocol ``serve`` picks) in its own
  process, with ``ws_per_message_deflate`` on and off; the client sends each frame and waits
  for it back, as the service receives the microphone and sends the answer. Server CPU per
  frame from /proc.

Run: ``python -m bench.ws_deflate [--frames 5000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import uvicorn
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from bench.load import cpu_s
from bench.upstream import REPO, server_process
from voice_orchestrator.audio import decode

SPEECH = [*sorted((REPO.parent / "shared" / "data" / "speech").glob("*_16k.wav")),
          REPO / "tests" / "assets" / "question.wav"]  # fmt: skip
FRAME_MS = 20


def speech_frames(rate: int) -> list[bytes]:
    """The speech clips at ``rate``, cut into 20-ms frames of 16-bit PCM."""
    size = rate * FRAME_MS // 1000 * 2
    frames: list[bytes] = []
    for path in SPEECH:
        if not path.exists():
            continue
        pcm = decode(path.read_bytes(), min_s=0.1, max_s=600, target_rate=rate).audio.pcm
        frames.extend(pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size))
    if not frames:
        raise RuntimeError("no speech clips found")
    return frames


def extension_cost(rate: int, limit: int) -> dict[str, Any]:
    """CPU per frame of the extension alone, one compressor and one decompressor kept across
    frames (context takeover, as on a connection)."""
    frames = speech_frames(rate)[:limit]
    # What uvicorn's server answers to a client offering permessage-deflate with defaults.
    sender = PerMessageDeflate(False, False, 15, 15)
    receiver = PerMessageDeflate(False, False, 15, 15)
    start = time.process_time()
    encoded = [sender.encode(Frame(Opcode.BINARY, data)) for data in frames]
    compress = time.process_time() - start
    start = time.process_time()
    for frame in encoded:
        receiver.decode(frame)
    decompress = time.process_time() - start
    raw = sum(len(data) for data in frames)
    wire = sum(len(frame.data) for frame in encoded)
    return {
        "rate": rate,
        "frames": len(frames),
        "frame_bytes": len(frames[0]),
        "compress_us_per_frame": round(compress * 1e6 / len(frames), 1),
        "decompress_us_per_frame": round(decompress * 1e6 / len(frames), 1),
        "wire_share": round(wire / raw, 3),
    }


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A WebSocket that sends every binary message back."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def echo_cost(deflate: bool, frames: list[bytes]) -> dict[str, Any]:
    """Server CPU per echoed frame with the extension on or off."""
    module = ["bench.ws_deflate", "--serve", *([] if deflate else ["--no-deflate"])]
    with server_process(module, 1, {}) as (url, pid):
        async with connect(url.replace("http", "ws", 1) + "/") as ws:
            negotiated = bool(ws.protocol.extensions)
            for data in frames[:50]:  # warm up
                await ws.send(data)
                await ws.recv()
            before = cpu_s(pid)
            start = time.perf_counter()
            for data in frames:
                await ws.send(data)
                await ws.recv()
            wall = time.perf_counter() - start
            used = cpu_s(pid) - before
    return {
        "negotiated": negotiated,
        "server_cpu_us_per_frame": round(used * 1e6 / len(frames), 1),
        "round_trip_us_per_frame": round(wall * 1e6 / len(frames), 1),
    }


async def ws_deflate(frames: int) -> dict[str, Any]:
    mic = speech_frames(16_000)
    sent = (mic * (frames // len(mic) + 1))[:frames]
    on, off = await echo_cost(True, sent), await echo_cost(False, sent)
    return {
        "figure": "ws_per_message_deflate",
        "frames": frames,
        "extension_16k": extension_cost(16_000, frames),
        "extension_24k": extension_cost(24_000, frames),
        "echo_deflate_on": on,
        "echo_deflate_off": off,
        "server_cpu_us_per_frame_saved": round(
            on["server_cpu_us_per_frame"] - off["server_cpu_us_per_frame"], 1
        ),
        "note": "server CPU from /proc has a 10-ms tick: use a few thousand frames",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--serve", action="store_true", help="serve the echo (internal)")
    parser.add_argument("--no-deflate", action="store_true")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.serve:
        uvicorn.run(
            "bench.ws_deflate:echo",
            host="127.0.0.1",
            port=args.port,
            lifespan="off",
            log_level="warning",
            ws_per_message_deflate=not args.no_deflate,
        )
        return
    print(json.dumps(asyncio.run(ws_deflate(args.frames)), indent=2))


if __name__ == "__main__":
    sys.exit(main())
