"""Memory: resident size before and after many turns, and the peak of one 60-s upload.

In-process with instant providers that record nothing, so only the service's own allocations
count.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from tests.fakes import make_wav

from bench.instant import instant_providers
from voice_orchestrator.main import create_app
from voice_orchestrator.settings import Settings

URL = "/api/orchestrator/dialogue"


def rss_mb() -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert match
    return int(match.group(1)) / 1024


class PeakSampler:
    """Samples this process's resident size every millisecond while it runs."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.001)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def memory(turns: int) -> dict[str, Any]:
    settings = Settings(_env_file=None, max_concurrency=1000)
    app = create_app(settings, instant_providers())
    body = make_wav(1.0)
    long_body = make_wav(59.0)
    headers = {"content-type": "audio/wav"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(200):  # warm every code path and cache first
                await client.post(URL, content=body, headers=headers)
            gc.collect()
            before = rss_mb()
            for i in range(turns):
                await client.post(URL, content=body, headers=headers, params={
                    "session_id": f"s{i % 500}"})  # fmt: skip
            gc.collect()
            after = rss_mb()
            await client.post(URL, content=long_body, headers=headers)
            gc.collect()
            base = rss_mb()
            with PeakSampler() as sampler:
                response = await client.post(URL, content=long_body, headers=headers)
                response.raise_for_status()
    return {
        "figure": "memory",
        "turns": turns,
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "growth_mb": round(after - before, 1),
        "upload_60s_bytes": len(long_body),
        "peak_for_60s_input_mb": round(sampler.peak - base, 1),
        "note": "500 sessions of history are kept by design; growth beyond them is a leak",
    }
