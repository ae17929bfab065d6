"""Prometheus metrics of one app, in a registry of its own (tests build many apps per process).

Multi-worker: every worker process has its own registry and ``GET /metrics`` shows that worker's
numbers only; prometheus-client's multiprocess mode is not used, whatever
``PROMETHEUS_MULTIPROC_DIR`` says. With ``--workers N`` behind one port a scrape reaches one
worker at random, so run one worker per process or container and let Prometheus scrape each.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .errors import ProviderError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "orchestrator"
# Seconds: from a fast local STT call to a slow full reply of a remote model.
BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
# TurnTimings field -> histogram name (without prefix) and help text.
TURN_HISTOGRAMS = {
    "stt_ms": ("stt_seconds", "Speech-to-text time of completed turns."),
    "llm_first_token_ms": ("llm_first_token_seconds", "Language model time to first token."),
    "llm_ms": ("llm_seconds", "Language model time to the end of the reply."),
    "tts_first_audio_ms": ("tts_first_audio_seconds", "Speech synthesis time to first audio."),
    "tts_ms": ("tts_seconds", "Speech synthesis time from first sentence to last audio."),
    "first_audio_ms": ("turn_first_audio_seconds", "Turn time from request to first audio."),
    "total_ms": ("turn_seconds", "Turn time from request to the end of the answer."),
}


class SlotGauges(Protocol):
    """What the slot gauges read (the dialogue slots)."""

    @property
    def limit(self) -> int: ...

    @property
    def active(self) -> int: ...

    @property
    def waiting(self) -> int: ...


class _SlotsCollector(Collector):
    """Reads the dialogue slots at scrape time, so the gauges cost nothing per turn."""

    def __init__(self) -> None:
        self.slots: SlotGauges | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        slots = self.slots
        if slots is None:
            return
        yield GaugeMetricFamily(f"{PREFIX}_slots_limit", "Dialogue slots.", value=slots.limit)
        yield GaugeMetricFamily(
            f"{PREFIX}_slots_active", "Dialogue slots in use.", value=slots.active
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_slots_waiting", "Requests waiting for a slot.", value=slots.waiting
        )


class Metrics:
    """The instruments, and the only code that touches them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._slots = _SlotsCollector()
        self.registry.register(self._slots)
        self._requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests by route template, method, status and error code.",
            ["route", "method", "status", "code"],
            registry=self.registry,
        )
        self._request_seconds = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request time until the response is complete.",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._turn = {
            field: Histogram(f"{PREFIX}_{name}", help_text, buckets=BUCKETS, registry=self.registry)
            for field, (name, help_text) in TURN_HISTOGRAMS.items()
        }
        self._turns = Counter(
            f"{PREFIX}_turns",
            "Dialogue turns (REST and WebSocket) by status (ok, failed) and error code.",
            ["status", "code"],
            registry=self.registry,
        )
        self._failures = Counter(
            f"{PREFIX}_upstream_failures",
            "Provider failures that ended a turn, by stage and kind.",
            ["stage", "kind"],
            registry=self.registry,
        )
        self._retries = Counter(
            f"{PREFIX}_upstream_retries",
            "Retried provider calls, by stage and the error code that caused the retry.",
            ["stage", "code"],
            registry=self.registry,
        )
        self._served = Counter(
            f"{PREFIX}_provider_calls",
            "Provider calls served, by stage and role (primary, fallback), where a stage has a "
            "fallback.",
            ["stage", "role"],
            registry=self.registry,
        )
        self._cuts = Counter(
            f"{PREFIX}_upstream_stream_cuts",
            "Streamed upstream bodies that ended early after their first audio or text had been "
            "handed on (the answer went on with what arrived), by stage and reason.",
            ["stage", "reason"],
            registry=self.registry,
        )

        self._tool_calls = Counter(
            f"{PREFIX}_tool_calls",
            "Tool calls by tool and outcome (ok, error, timeout, invalid_arguments, "
            "unknown_tool, cancelled).",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self._tool_seconds = Histogram(
            f"{PREFIX}_tool_call_seconds",
            "Tool call time, argument checks included, by tool.",
            ["tool"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    def watch_slots(self, slots: SlotGauges) -> None:
        """Reports ``slots`` in the slot gauges from now on."""
        self._slots.slots = slots

    def count_request(
        self, route: str, method: str, status: int, code: str | None, seconds: float
    ) -> None:
        self._requests.labels(route, method, str(status), code or "").inc()
        self._request_seconds.labels(route).observe(seconds)

    def observe_turn(self, timings: Mapping[str, float]) -> None:
        """Records the stage and turn times (ms, by TurnTimings field) of a completed turn."""
        for field, histogram in self._turn.items():
            value = timings.get(field)
            if value is not None:
                histogram.observe(value / 1000)

    def count_turn(self, status: str, code: str | None) -> None:
        self._turns.labels(status, code or "").inc()

    def count_failure(self, error: ProviderError) -> None:
        self._failures.labels(error.stage, error.kind.lower()).inc()

    def count_retry(self, stage: str, code: str) -> None:
        """The ``on_retry`` hook of the OpenAI adapters."""
        self._retries.labels(stage, code).inc()

    def count_tool_call(self, tool: str, outcome: str, seconds: float) -> None:
        """The ``on_call`` hook of the tool box."""
        self._tool_calls.labels(tool, outcome).inc()
        self._tool_seconds.labels(tool).observe(seconds)

    def count_served(self, stage: str, role: str) -> None:
        """The ``on_serve`` hook of the fallback providers: which one served a call."""
        self._served.labels(stage, role).inc()

    def count_cut(self, stage: str, reason: str) -> None:
        """The ``on_cut`` hook of the OpenAI speech adapter."""
        self._cuts.labels(stage, reason).inc()

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
