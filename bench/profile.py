"""Where a request's time goes: py-spy samples the service (one process) while the lean client
keeps it busy, and the samples are summed by the package whose code was running.

Run: ``make profile`` (``python -m bench.profile [--providers instant|openai] [--seconds 8]``).
Prints one JSON object: the share of samples by package (the frame on top of each sampled
stack), and the functions most often on the stack (inclusive).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from tests.fakes import make_wav

from bench.load import SERVICES, drive

# Buckets by the file of the frame on top of a sampled stack (py-spy names files relative to
# their sys.path entry); the first match wins.
PACKAGES = (
    ("voice_orchestrator", ("(voice_orchestrator/",)),
    ("openai SDK", ("(openai/",)),
    ("HTTP client (httpx2, httpcore2, h11, anyio)",
     ("(httpx2/", "(httpcore2/", "(h11/", "(anyio/")),
    ("FastAPI, Starlette, pydantic", ("(fastapi/", "(starlette/", "(pydantic")),
    ("uvicorn", ("(uvicorn/",)),
    ("logging", ("(logging/",)),
    ("metrics (prometheus_client)", ("(prometheus_client/",)),
    ("audio (numpy, soundfile, soxr)", ("(numpy/", "(soundfile", "(soxr/")),
    ("event loop in C (uvloop: sockets, HTTP parsing, waiting)", ("Runner.run (asyncio/",)),
    ("asyncio, threads, contextlib", ("(asyncio/", "(threading.py", "(concurrent/", "(contextlib")),
)  # fmt: skip
# Threads parked on their work queue: not work, left out of the shares.
IDLE = ("_worker (concurrent/futures/thread.py:81)", "Condition.wait (threading.py",
        "Queue.get (queue.py", "WorkerThread.run (anyio/")  # fmt: skip


def package_of(frame: str) -> str:
    for name, patterns in PACKAGES:
        if any(pattern in frame for pattern in patterns):
            return name
    return "other"


def summarize(folded: str, top: int = 15) -> dict[str, Any]:
    """Shares of py-spy's raw (folded) output: ``frame;frame;... count`` a line.
    Also the leaf frames that fell into "other", to refine the buckets by."""
    by_package: Counter[str] = Counter()
    other: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames[-1].startswith(IDLE):
            continue
        total += n
        package = package_of(frames[-1])
        by_package[package] += n
        if package == "other":
            other[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame.split(" (")[0]] += n
    share = {name: round(n / total, 3) for name, n in by_package.most_common()} if total else {}
    return {
        "samples": total,
        "top_other_leaves": [frame for frame, _ in other.most_common(5)],
        "self_share_by_package": share,
        # Below the entry chain (run, Server.run, ...) that every sample shares.
        "top_inclusive": dict(
            [
                (name, round(n / total, 3))
                for name, n in inclusive.most_common()
                if n < 0.95 * total
            ][:top]
        ),
    }


async def profile(providers: str, seconds: float, concurrency: int = 5) -> dict[str, Any]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: run `make install`")
    body = make_wav(1.0)
    env = {"ORCH_MAX_CONCURRENCY": str(concurrency), "ORCH_LOG_LEVEL": "INFO"}
    with (
        SERVICES[providers](1, **env) as (url, pid),
        tempfile.TemporaryDirectory() as tmp,
    ):
        await drive(url, concurrency, 2.0, body)  # warm-up
        out = Path(tmp) / "profile.txt"
        command = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                   "--rate", "250", "--format", "raw", "--output", str(out)]  # fmt: skip
        recorder = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        load = await drive(url, concurrency, seconds + 1.0, body)
        if await recorder.wait() != 0 or not out.exists():
            raise SystemExit("py-spy could not sample the service (ptrace not permitted?)")
        folded = out.read_text()
    return {
        "figure": "profile",
        "providers": providers,
        "concurrency": concurrency,
        "ok_per_s": load["ok_per_s"],
        **summarize(folded),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--providers", choices=sorted(SERVICES), default="openai")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(profile(args.providers, args.seconds))))


if __name__ == "__main__":
    main()
