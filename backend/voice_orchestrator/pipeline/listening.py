"""The listener's side of a conversation before any turn logic: PCM at the transport's rate,
resampled (streaming) to the voice activity detector's, then cut into utterances by the
detector (server VAD) or gathered until a commit (push-to-talk)."""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr

from ..audio import Audio
from .vad import SAMPLE_RATE, FrameClassifier, Segmenter, SegmentEvent, WebRtcClassifier


class Listening:
    def __init__(
        self,
        *,
        input_rate: int,
        server_vad: bool,
        vad_start_ms: int,
        vad_silence_ms: int,
        max_audio_s: float,
        classifier: FrameClassifier | None = None,
    ) -> None:
        self._input_rate = input_rate
        self._server_vad = server_vad
        self._max_bytes = int(max_audio_s * SAMPLE_RATE) * 2
        self._segmenter = Segmenter(
            classifier or WebRtcClassifier(),
            start_ms=vad_start_ms,
            silence_ms=vad_silence_ms,
            max_utterance_s=max_audio_s,
        )
        self._resampler = self._new_resampler()
        self._buffer = bytearray()  # without server VAD: what arrived since the last commit
        self.heard_ms = 0  # listener audio received, for speech start/stop positions

    def _new_resampler(self) -> Any:
        if self._input_rate == SAMPLE_RATE:
            return None
        return soxr.ResampleStream(self._input_rate, SAMPLE_RATE, 1, dtype="int16")

    @property
    def speaking(self) -> bool:
        return self._segmenter.speaking

    def push(self, pcm: bytes) -> list[SegmentEvent]:
        """PCM s16le mono at the input rate; the detector's events (none without server VAD)."""
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(np.frombuffer(pcm, dtype=np.int16)).tobytes()
        self.heard_ms += len(pcm) * 1000 // (2 * SAMPLE_RATE)
        if not self._server_vad:
            self._buffer += pcm
            del self._buffer[: max(0, len(self._buffer) - self._max_bytes)]
            return []
        return self._segmenter.push(pcm)

    def commit(self) -> Audio | None:
        """The utterance now: the speech so far, or what arrived since the last one."""
        if self._resampler is not None:
            # The resampler holds back a few milliseconds for its filter: they belong to this
            # utterance. It cannot be used after its last chunk, so a new one follows.
            tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
            self._resampler = self._new_resampler()
            if self._server_vad:
                self._segmenter.push(tail.tobytes())  # too short to change the turn
            else:
                self._buffer += tail.tobytes()
        if self._server_vad:
            return self._segmenter.commit()
        audio = Audio(bytes(self._buffer), SAMPLE_RATE) if self._buffer else None
        self._buffer.clear()
        return audio

    def clear(self) -> None:
        self._segmenter.commit()
        self._buffer.clear()
