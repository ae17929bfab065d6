"""A lean HTTP/1.1 load client: keep-alive connections over asyncio streams, one request
prepared once and sent back to back, responses read by their Content-Length.

A general-purpose client (httpx) spends about a millisecond of CPU on each request, as much as
the service under test; on a 2-core machine that halves what can be measured. This one spends
tens of microseconds, so a throughput figure is the service's and not the client's.
It is for the service's own non-streamed answers, which always carry a Content-Length.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        latencies = self.latencies_ms
        quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
        return {
            "requests": sum(self.statuses.values()),
            "ok_per_s": round(self.statuses[200] / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "statuses": {str(code): n for code, n in sorted(self.statuses.items())},
            "transport_errors": dict(self.errors),
            "p50_ms": round(quantiles[49], 2),
            "p99_ms": round(quantiles[98], 2),
        }


def build_request(url: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    host = urlsplit(url).netloc
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Reads one response; returns its status and whether the server keeps the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
        elif name == b"transfer-encoding":
            raise ValueError("chunked responses are not supported by this client")
    if length:
        await reader.readexactly(length)
    return status, keep


async def drive(
    url: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    *,
    concurrency: int,
    seconds: float,
) -> LoadResult:
    """``concurrency`` connections, each sending the request again as soon as the last answer
    is in, for ``seconds``."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = build_request(url, path, body, headers)
    result = LoadResult()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def connection() -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            while loop.time() < deadline:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                start = time.perf_counter()
                try:
                    writer.write(request)
                    status, keep = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    result.errors[type(e).__name__] += 1
                    writer.close()
                    writer = None
                    continue
                result.statuses[status] += 1
                if status == 200:
                    result.latencies_ms.append((time.perf_counter() - start) * 1000)
                if not keep:
                    writer.close()
                    writer = None
        finally:
            if writer is not None:
                writer.close()

    start = loop.time()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    result.elapsed_s = loop.time() - start
    return result
