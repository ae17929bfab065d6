"""Transcription that starts on a pause in the listener's speech, before the end of the turn is
certain: when the turn does end there, its result is used (up to 400 ms sooner); when the
listener goes on, it is abandoned. Abandoned ones are cancelled at once but still owned: the
conversation awaits them before it ends."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from ..providers.base import Transcript
from .turn_types import EarlyTranscription


class EarlyTranscriber:
    def __init__(self) -> None:
        self._current: EarlyTranscription | None = None
        self._abandoned: set[asyncio.Task[Any]] = set()

    def start(self, transcription: Coroutine[Any, Any, Transcript]) -> None:
        self.drop()
        self._current = EarlyTranscription.start(transcription)

    def take(self) -> EarlyTranscription | None:
        """The transcription under way, now the turn's to use (or to drop)."""
        early, self._current = self._current, None
        return early

    def drop(self) -> None:
        if self._current is not None:
            task = self._current.task
            self._current = None
            task.cancel()
            self._abandoned.add(task)
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed speculative transcription is not news

    async def close(self) -> None:
        self.drop()
        if self._abandoned:
            await asyncio.wait(self._abandoned)
