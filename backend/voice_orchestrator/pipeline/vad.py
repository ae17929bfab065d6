"""Voice activity detection: cuts a stream of 16 kHz PCM into utterances.

Frames are classified by WebRTC's VAD (mode 3, the most aggressive at rejecting noise). It costs
about 5 µs per 20-ms frame (real-time factor 0.0002), against 0.4 ms for silero on onnxruntime,
so twenty open sessions cost nothing measurable and classification runs inline on the event loop
without a thread hop that would cost more than the work. Mode 3 also kept two utterances apart
over faint noise where mode 2 merged them.

``Segmenter`` turns classifications into events with hysteresis: speech starts only after
``start_ms`` of mostly voiced frames (a cough or a click does not start it, nor barge in), and
stops after ``silence_ms`` of unvoiced frames. A shorter ``pause_ms`` of silence reports a pause,
so that transcription may start speculatively before the end of the turn is certain. Before
speech is confirmed, the first voiced frame reports a possible onset (an answer being played
pauses at once) and a window that passes without confirmation dismisses it (the answer resumes).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

import webrtcvad  # type: ignore[import-untyped]

from ..audio import Audio

SAMPLE_RATE = 16_000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000 * 2


class FrameClassifier(Protocol):
    def is_speech(self, frame: bytes) -> bool:
        """Whether one 20-ms frame of 16 kHz s16le PCM holds speech."""
        ...


class WebRtcClassifier:
    def __init__(self, mode: int = 3) -> None:
        self._vad = webrtcvad.Vad(mode)

    def is_speech(self, frame: bytes) -> bool:
        return bool(self._vad.is_speech(frame, SAMPLE_RATE))


@dataclass(frozen=True, slots=True)
class VoiceOnset:
    """A voiced frame while no speech is under way: maybe speech, maybe a cough."""


@dataclass(frozen=True, slots=True)
class VoiceDismissed:
    """The voice since the last onset did not become speech."""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    pass


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """Silence for ``pause_ms`` after speech; ``audio`` is the utterance so far."""

    audio: Audio


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """Speech again after a pause: the utterance goes on."""


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The utterance is over; ``audio`` holds it with a little context either side."""

    audio: Audio


SegmentEvent = (
    VoiceOnset | VoiceDismissed | SpeechStarted | SpeechPaused | SpeechResumed | SpeechStopped
)


class Segmenter:
    """Feed it PCM of any length with ``push``; it returns the events that PCM caused."""

    def __init__(
        self,
        classifier: FrameClassifier,
        *,
        start_ms: int = 200,
        silence_ms: int = 600,
        pause_ms: int = 200,
        preroll_ms: int = 300,
        max_utterance_s: float = 60.0,
    ) -> None:
        self._classifier = classifier
        self._start_frames = max(1, start_ms // FRAME_MS)
        # Mostly voiced: 80 % of the window, so one unvoiced frame inside a word does not reset it.
        self._start_needed = max(1, (self._start_frames * 4 + 4) // 5)
        self._silence_frames = max(1, silence_ms // FRAME_MS)
        self._pause_frames = min(max(1, pause_ms // FRAME_MS), self._silence_frames)
        self._max_frames = max(1, int(max_utterance_s * 1000) // FRAME_MS)
        self._pending = bytearray()
        self._preroll_frames = max(self._start_frames, preroll_ms // FRAME_MS)
        # Before speech: what was heard since the last utterance (for a commit without detected
        # speech), of which the last ``preroll_frames`` become the start of the next utterance.
        self._heard: deque[bytes] = deque(maxlen=self._max_frames)
        self._window: deque[bool] = deque(maxlen=self._start_frames)
        self._utterance = bytearray()
        self._frames = 0
        self._silent = 0
        self._paused = False
        # Frames since a possible onset that has not been confirmed yet; None when there is none.
        self._onset: int | None = None
        self._onset_limit = self._start_frames + self._start_frames // 2
        self._last_voiced = False
        self.speaking = False

    def push(self, pcm: bytes) -> list[SegmentEvent]:
        self._pending += pcm
        events: list[SegmentEvent] = []
        whole = len(self._pending) - len(self._pending) % FRAME_BYTES
        for offset in range(0, whole, FRAME_BYTES):
            frame = bytes(self._pending[offset : offset + FRAME_BYTES])
            event = self._frame(frame, self._classifier.is_speech(frame))
            if event is not None:
                events.append(event)
        del self._pending[:whole]
        return events

    def commit(self) -> Audio | None:
        """Ends the utterance now: the speech so far, or everything heard since the last
        utterance when no speech was detected. None when nothing has been heard at all."""
        audio: Audio | None
        if self.speaking:
            audio = self._take()
        else:
            data = b"".join(self._heard) + bytes(self._pending)
            audio = Audio(data, SAMPLE_RATE) if data else None
        self._reset()
        return audio

    def _frame(self, frame: bytes, voiced: bool) -> SegmentEvent | None:
        if not self.speaking:
            self._heard.append(frame)
            self._window.append(voiced)
            if sum(self._window) < self._start_needed:
                return self._maybe_onset(voiced)
            self._onset = None
            self.speaking = True
            preroll = list(self._heard)[-self._preroll_frames :]
            self._utterance = bytearray(b"".join(preroll))
            self._frames = len(preroll)
            self._heard.clear()
            self._window.clear()
            self._silent = 0
            return SpeechStarted()
        self._utterance += frame
        self._frames += 1
        if voiced:
            self._silent = 0
            if self._paused:
                self._paused = False
                return SpeechResumed()
            return None if self._frames < self._max_frames else SpeechStopped(self._take())
        self._silent += 1
        if self._silent >= self._silence_frames or self._frames >= self._max_frames:
            return SpeechStopped(self._take())
        if self._silent == self._pause_frames and not self._paused:
            self._paused = True
            return SpeechPaused(self._audio())
        return None

    def _maybe_onset(self, voiced: bool) -> SegmentEvent | None:
        if self._onset is None:
            # Two voiced frames in a row: one alone is as often a click or faint noise.
            if not voiced or not self._last_voiced:
                self._last_voiced = voiced
                return None
            self._onset = 0
            return VoiceOnset()
        self._onset += 1
        if self._onset < self._onset_limit:
            return None
        self._onset = None
        return VoiceDismissed()

    def _audio(self) -> Audio:
        return Audio(bytes(self._utterance), SAMPLE_RATE)

    def _take(self) -> Audio:
        audio = self._audio()
        self._reset()
        return audio

    def _reset(self) -> None:
        self.speaking = False
        self._paused = False
        self._utterance = bytearray()
        self._frames = 0
        self._silent = 0
        self._onset = None
        self._last_voiced = False
        self._heard.clear()
        self._window.clear()
