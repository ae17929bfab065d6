"""Load on loopback: the service in its own process(es) on the OpenAI-compatible upstream of
``bench.upstream``, driven by an asyncio client from this process.

``python -m bench.load`` (``make load``): 4x the dialogue slots for 60 s; only 200 and 429 may
come back, the slots are free afterwards and the server's memory is stable.
``throughput()`` is the ``make bench`` figure: requests/s at a given concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from tests.fakes import make_wav

from bench.upstream import Latency, service_process, upstream_process

URL = "/api/orchestrator/dialogue"
# Upstream latencies for the load test: the slots fill, so admission is exercised.
LOAD_LATENCY = Latency(stt_ms=100, first_token_ms=100, token_ms=10, tts_ms=50)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn's workers)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue
        if status.parent.name == str(pid) or fields.get("PPid", "").strip() == str(pid):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


async def drive(url: str, concurrency: int, seconds: float, body: bytes) -> dict[str, Any]:
    """``concurrency`` clients posting back to back for ``seconds``."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds

        async def worker() -> None:
            while loop.time() < deadline:
                start = time.perf_counter()
                try:
                    response = await client.post(
                        URL, content=body, headers={"content-type": "audio/wav"}
                    )
                except httpx.HTTPError as e:
                    errors[type(e).__name__] += 1
                    continue
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - start) * 1000)

        start = loop.time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = loop.time() - start
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": sum(statuses.values()),
        "ok_per_s": round(statuses[200] / elapsed, 1),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "transport_errors": dict(errors),
        "p50_ms": round(quantiles[49], 1),
        "p99_ms": round(quantiles[98], 1),
    }


async def slots_after(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        concurrency: dict[str, Any] = (await client.get("/api/orchestrator/status")).json()[
            "concurrency"
        ]
        return concurrency


async def throughput(concurrency: int, seconds: float, workers: int = 1) -> dict[str, Any]:
    """Requests/s with instant upstreams and a 1-s WAV; enough slots for every client, so the
    figure is what the service itself can do."""
    body = make_wav(1.0)
    with (
        upstream_process(Latency()) as base,
        service_process(base, workers=workers, ORCH_MAX_CONCURRENCY=str(concurrency)) as (url, _),
    ):
        await drive(url, concurrency, min(2.0, seconds), body)  # warm-up
        result = await drive(url, concurrency, seconds, body)
    return {"figure": "throughput", "concurrency": concurrency, "workers": workers,
            "seconds": seconds, **result}  # fmt: skip


async def load(seconds: float, slots: int = 5) -> dict[str, Any]:
    body = make_wav(1.0)
    with (
        upstream_process(LOAD_LATENCY) as base,
        service_process(base, ORCH_MAX_CONCURRENCY=str(slots)) as (url, pid),
    ):
        await drive(url, slots, 2.0, body)  # warm-up
        before = rss_mb(pid)
        result = await drive(url, 4 * slots, seconds, body)
        await asyncio.sleep(0.5)
        after = rss_mb(pid)
        concurrency = await slots_after(url)
    unexpected = {code: n for code, n in result["statuses"].items() if code not in ("200", "429")}
    return {
        "figure": "load",
        "slots": slots,
        "concurrency": 4 * slots,
        "seconds": seconds,
        **result,
        "unexpected_statuses": unexpected,
        "slots_active_after": concurrency["active"],
        "slots_waiting_after": concurrency["waiting"],
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "ok": not unexpected and not result["transport_errors"] and concurrency["active"] == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--slots", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(load(args.seconds, args.slots))
    print(json.dumps(result))
    raise SystemExit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
