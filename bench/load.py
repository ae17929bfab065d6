"""Load on loopback: the service in its own process(es), on instant in-process stages
(``bench.instant``) or on the OpenAI-compatible upstream of ``bench.upstream``, driven by the
lean keep-alive client of ``bench.client`` from this process.

``python -m bench.load`` (``make load``): 4x the dialogue slots for 60 s; only 200 and 429 may
come back, the slots are free afterwards and the server's memory is stable.
``throughput()`` is the ``make bench`` figure: requests/s at a given concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from tests.fakes import make_wav

from bench import client
from bench.upstream import (
    Latency,
    clean_env,
    server_process,
    service_process,
    upstream_process,
)

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


def cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process and its children (uvicorn's workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def drive(url: str, concurrency: int, seconds: float, body: bytes) -> dict[str, Any]:
    """``concurrency`` keep-alive clients posting the WAV back to back for ``seconds``."""
    result = await client.drive(
        url, URL, body, {"Content-Type": "audio/wav"}, concurrency=concurrency, seconds=seconds
    )
    return result.summary()


async def slots_after(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        concurrency: dict[str, Any] = (await http.get("/api/orchestrator/status")).json()[
            "concurrency"
        ]
        return concurrency


def instant_service(workers: int, **env: str) -> AbstractContextManager[tuple[str, int]]:
    """The service on instant in-process providers (``bench.instant``)."""
    return server_process(["bench.instant"], workers, clean_env(**env))


@contextmanager
def openai_service(workers: int, **env: str) -> Iterator[tuple[str, int]]:
    """The service with every stage on the loopback OpenAI-compatible upstream."""
    with upstream_process(Latency()) as base, service_process(base, workers=workers, **env) as s:
        yield s


SERVICES = {"instant": instant_service, "openai": openai_service}


async def throughput(
    concurrency: int, seconds: float, workers: int = 1, providers: str = "instant"
) -> dict[str, Any]:
    """Requests/s with instant stages and a 1-s WAV, enough slots for every client, so the
    figure is what the service itself can do; and the service's CPU per request, which is
    the figure a noisy or shared machine changes least. ``providers="instant"`` puts the
    stages in the process; ``"openai"`` puts them behind the real adapters on a loopback
    OpenAI-compatible upstream (whose CPU, and the client's, are not counted)."""
    body = make_wav(1.0)
    # Default log level: two INFO lines a request (access and turn summary), as deployed.
    env = {"ORCH_MAX_CONCURRENCY": str(concurrency), "ORCH_LOG_LEVEL": "INFO"}
    with SERVICES[providers](workers, **env) as (url, pid):
        await drive(url, concurrency, min(2.0, seconds), body)  # warm-up
        before = cpu_s(pid)
        result = await drive(url, concurrency, seconds, body)
        used = cpu_s(pid) - before
    per_request = used * 1000 / result["requests"] if result["requests"] else 0.0
    return {"figure": "throughput", "providers": providers, "concurrency": concurrency,
            "workers": workers, "seconds": seconds, **result,
            "service_cpu_ms_per_request": round(per_request, 3)}  # fmt: skip


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
