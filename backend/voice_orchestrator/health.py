"""Health of the three providers: active probes, cached and shared, plus what real traffic says.

A stage is healthy when its probe answers within ``slow_ms``; degraded when the probe is slower
or when most of its recent real calls failed; unhealthy when the probe fails or takes longer
than ``timeout_s``. Probes of the three stages run concurrently. A round of probes is cached for
``cache_s``, and callers arriving while one runs wait for it instead of starting another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import get_args

from .errors import ProviderStage
from .pipeline.aio import ms_since
from .providers.base import HealthStatus, Provider, ProviderHealth, Providers

logger = logging.getLogger(__name__)

STAGES: tuple[ProviderStage, ...] = get_args(ProviderStage)
SEVERITY: dict[HealthStatus, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One stage as the status endpoint shows it."""

    status: HealthStatus
    provider: str
    model: str
    latency_ms: float
    detail: str


@dataclass(frozen=True, slots=True)
class StatusReport:
    status: HealthStatus
    checked_at: datetime
    services: dict[ProviderStage, ServiceStatus]


def worst(statuses: list[HealthStatus]) -> HealthStatus:
    return max(statuses, key=SEVERITY.__getitem__, default="healthy")


class RecentOutcomes:
    """The last ``size`` real calls of each stage that are younger than ``max_age_s``.

    ``record`` is O(1) and never blocks: it is called at the end of every turn.
    """

    def __init__(
        self,
        size: int = 20,
        max_age_s: float = 300.0,
        min_samples: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._calls = {stage: deque[tuple[float, bool]](maxlen=size) for stage in STAGES}
        self._max_age_s = max_age_s
        self._min_samples = min_samples
        self._clock = clock

    def record(self, stage: ProviderStage, ok: bool) -> None:
        self._calls[stage].append((self._clock(), ok))

    def failures(self, stage: ProviderStage) -> tuple[int, int]:
        """(failed, total) among the recent calls of ``stage``."""
        oldest = self._clock() - self._max_age_s
        recent = [ok for at, ok in self._calls[stage] if at >= oldest]
        return recent.count(False), len(recent)

    def mostly_failing(self, stage: ProviderStage) -> bool:
        """More than half of at least ``min_samples`` recent calls failed."""
        failed, total = self.failures(stage)
        return total >= self._min_samples and failed * 2 > total


@dataclass(frozen=True, slots=True)
class _Round:
    at: float
    checked_at: datetime
    results: dict[ProviderStage, ProviderHealth]


class HealthChecker:
    """Probes the providers for the status endpoint; see the module docstring for the rules."""

    def __init__(
        self,
        providers: Providers,
        outcomes: RecentOutcomes,
        *,
        slow_ms: float,
        timeout_s: float,
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._providers: dict[ProviderStage, Provider] = {
            "stt": providers.stt, "llm": providers.llm, "tts": providers.tts
        }  # fmt: skip
        self.outcomes = outcomes
        self._slow_ms = slow_ms
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._clock = clock
        self._cached: _Round | None = None
        self._running: asyncio.Task[_Round] | None = None
        self._started = clock()

    @property
    def uptime_s(self) -> float:
        """Seconds since the checker was built, i.e. since the app started."""
        return self._clock() - self._started

    async def check(self) -> StatusReport:
        """The current report: cached probe results, or a fresh round shared with concurrent
        callers, judged together with the recent real traffic."""
        cached = self._cached
        if cached is None or self._clock() - cached.at >= self._cache_s:
            if self._running is None:
                self._running = asyncio.create_task(self._probe_all())
                self._running.add_done_callback(self._finished)
            # Shielded: a caller that goes away must not cancel the round others wait for.
            cached = await asyncio.shield(self._running)
        services = {stage: self._judge(stage, health) for stage, health in cached.results.items()}
        overall = worst([service.status for service in services.values()])
        return StatusReport(overall, cached.checked_at, services)

    def _finished(self, task: asyncio.Task[_Round]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is None:
            self._cached = task.result()

    async def _probe_all(self) -> _Round:
        checked_at = datetime.now(UTC)
        probes = [self._probe(provider) for provider in self._providers.values()]
        results = await asyncio.gather(*probes)
        return _Round(self._clock(), checked_at, dict(zip(self._providers, results, strict=True)))

    async def _probe(self, provider: Provider) -> ProviderHealth:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                return await provider.health()
        except TimeoutError:
            return ProviderHealth(
                "unhealthy", ms_since(start), f"no answer within {self._timeout_s:g} s"
            )
        except Exception as e:  # health() should not raise; a probe that does is a failed one
            logger.warning("health probe raised", extra={"exception_type": type(e).__name__})
            return ProviderHealth("unhealthy", ms_since(start), "probe failed")

    def _judge(self, stage: ProviderStage, health: ProviderHealth) -> ServiceStatus:
        provider = self._providers[stage]
        status = health.status
        details = [health.detail] if health.detail else []
        if status == "healthy" and health.latency_ms > self._slow_ms:
            status = "degraded"
            details.append(f"slow probe ({health.latency_ms:.0f} ms)")
        if status != "unhealthy" and self.outcomes.mostly_failing(stage):
            failed, total = self.outcomes.failures(stage)
            status = "degraded"
            details.append(f"{failed} of the last {total} calls failed")
        return ServiceStatus(
            status=status,
            provider=provider.name,
            model=provider.model,
            latency_ms=round(health.latency_ms, 1),
            detail="; ".join(details),
        )

    async def aclose(self) -> None:
        """Cancels a round still running (the app is shutting down)."""
        if self._running is not None:
            self._running.cancel()
            await asyncio.wait({self._running})
