"""What every turn leaves behind: metrics, per-stage outcomes for the status page, one log line.

``TurnTelemetry.observe(turn)`` is ``turn.events()`` with bookkeeping that costs O(1) per event,
so any transport (REST, WebSocket) gets the same numbers by consuming it instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import Literal

from ..errors import OrchestratorError, ProviderError, SpeechNotRecognized
from ..health import STAGES, RecentOutcomes
from ..metrics import Metrics
from .aio import aclose
from .dialogue import AudioChunk, DialogueTurn, TurnDone, TurnEvent

logger = logging.getLogger(__name__)

TurnStatus = Literal["ok", "failed", "cancelled"]


class TurnTelemetry:
    """Feeds ``metrics`` and ``outcomes`` from the turns it observes and logs a summary of each
    (durations and codes only: never audio or text)."""

    def __init__(self, metrics: Metrics, outcomes: RecentOutcomes) -> None:
        self._metrics = metrics
        self._outcomes = outcomes

    async def observe(self, turn: DialogueTurn) -> AsyncGenerator[TurnEvent, None]:
        """Yields ``turn.events()`` unchanged; closing this iterator closes the turn's."""
        events = turn.events()
        output_s = 0.0
        ended = False
        try:
            async for event in events:
                if isinstance(event, AudioChunk):
                    output_s += event.audio.duration_s
                elif isinstance(event, TurnDone):
                    ended = True
                    self._succeeded(turn, output_s)
                yield event
        except Exception as e:
            ended = True
            self._failed(turn, e, output_s)
            raise
        finally:
            if not ended:  # closed early or cancelled: the client went away or barged in
                self._log(turn, "cancelled", None, output_s)
            await aclose(events)

    def _succeeded(self, turn: DialogueTurn, output_s: float) -> None:
        for stage in STAGES:
            self._outcomes.record(stage, True)
        self._metrics.observe_turn(turn.timings.as_dict(digits=None))
        self._metrics.count_turn("ok", None)
        self._log(turn, "ok", None, output_s)

    def _failed(self, turn: DialogueTurn, error: Exception, output_s: float) -> None:
        code = error.code if isinstance(error, OrchestratorError) else "INTERNAL_ERROR"
        if isinstance(error, ProviderError):
            self._metrics.count_failure(error)
            # The stages before the failing one did their part (STT precedes LLM precedes TTS).
            failing = STAGES.index(error.stage)
            for stage in STAGES[:failing]:
                self._outcomes.record(stage, True)
            self._outcomes.record(STAGES[failing], False)
        elif isinstance(error, SpeechNotRecognized):
            self._outcomes.record("stt", True)  # the recognizer worked; the audio had no words
        self._metrics.count_turn("failed", code)
        self._log(turn, "failed", code, output_s)

    def _log(
        self, turn: DialogueTurn, status: TurnStatus, code: str | None, output_s: float
    ) -> None:
        quiet = status != "failed" or code == SpeechNotRecognized.code
        logger.log(
            logging.INFO if quiet else logging.WARNING,
            "dialogue turn finished",
            extra={
                "status": status,
                "code": code,
                "input_s": round(turn.audio.duration_s, 3),
                "output_s": round(output_s, 3),
                "elapsed_ms": round((time.perf_counter() - turn.started_at) * 1000, 1),
                "timings_ms": turn.timings.as_dict(),
            },
        )
