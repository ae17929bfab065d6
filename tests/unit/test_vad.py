"""The segmenter's hysteresis on scripted frame classes, and WebRTC VAD on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from voice_orchestrator.audio import Audio, decode
from voice_orchestrator.pipeline.vad import (
    FRAME_BYTES,
    SAMPLE_RATE,
    Segmenter,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    SpeechStopped,
    VoiceDismissed,
    VoiceOnset,
    WebRtcClassifier,
)

from ..conftest import REPO, SPEECH


class Scripted:
    """Classifies each frame by its first byte: 1 is speech, 0 is not."""

    def is_speech(self, frame: bytes) -> bool:
        return frame[0] == 1


def frames(pattern: str) -> bytes:
    """'S' a speech frame, '.' a silent one (20 ms each)."""
    return b"".join(bytes([1 if c == "S" else 0]) * FRAME_BYTES for c in pattern)


def kinds(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def speech_events(seg: Segmenter, pcm: bytes) -> list[object]:
    """The events of ``pcm`` about speech itself (possible onsets left out)."""
    return [e for e in seg.push(pcm) if not isinstance(e, VoiceOnset | VoiceDismissed)]


def segmenter(**kw: int) -> Segmenter:
    options = {"start_ms": 100, "silence_ms": 200, "pause_ms": 60, "preroll_ms": 100}
    options.update(kw)
    return Segmenter(Scripted(), **options)  # type: ignore[arg-type]


def test_speech_then_silence_makes_one_utterance_with_preroll() -> None:
    seg = segmenter()
    events = speech_events(seg, frames("...." + "S" * 20 + "." * 10))
    assert kinds(events) == ["SpeechStarted", "SpeechPaused", "SpeechStopped"]
    stopped = events[-1]
    assert isinstance(stopped, SpeechStopped)
    # Speech starts at the 4th voiced frame (4 of a 5-frame window); the utterance holds the
    # 5 frames before it (".SSSS"), the 16 voiced frames after, and the 10 silent ones.
    assert stopped.audio.frames == 31 * FRAME_BYTES // 2
    assert not seg.speaking


def test_a_short_sound_does_not_start_speech() -> None:
    seg = segmenter()
    assert speech_events(seg, frames("SSS" + "." * 20 + "SSS" + "." * 20)) == []


def test_one_unvoiced_frame_inside_the_start_window_is_tolerated() -> None:
    seg = segmenter(start_ms=200)
    events = speech_events(seg, frames("SSSS.SSSSS"))
    assert kinds(events) == ["SpeechStarted"]


def test_speech_after_a_pause_resumes_the_same_utterance() -> None:
    seg = segmenter()
    events = speech_events(seg, frames("S" * 10 + "..." + "S" * 10 + "." * 10))
    assert kinds(events) == [
        "SpeechStarted", "SpeechPaused", "SpeechResumed", "SpeechPaused", "SpeechStopped",
    ]  # fmt: skip
    paused = events[1]
    assert isinstance(paused, SpeechPaused)
    stopped = events[-1]
    assert isinstance(stopped, SpeechStopped)
    assert stopped.audio.frames > paused.audio.frames


def test_frames_of_any_size_give_the_same_events() -> None:
    data = frames("...." + "S" * 20 + "." * 10)
    whole = kinds(segmenter().push(data))
    seg = segmenter()
    pieces: list[object] = []
    for offset in range(0, len(data), 77):
        pieces += seg.push(data[offset : offset + 77])
    assert kinds(pieces) == whole


def test_commit_ends_speech_at_once() -> None:
    seg = segmenter()
    speech_events(seg, frames("S" * 10))
    audio = seg.commit()
    assert audio is not None
    assert audio.frames == 10 * FRAME_BYTES // 2
    assert not seg.speaking


def test_commit_without_detected_speech_returns_what_was_heard() -> None:
    seg = segmenter()
    speech_events(seg, frames("." * 30))
    audio = seg.commit()
    assert audio is not None
    assert audio.frames == 30 * FRAME_BYTES // 2
    assert seg.commit() is None


def test_an_endless_utterance_is_cut_at_the_maximum() -> None:
    seg = Segmenter(Scripted(), start_ms=100, max_utterance_s=1.0)
    events = speech_events(seg, frames("S" * 60))
    # Cut after 50 frames; the speech that goes on starts the next utterance.
    assert kinds(events) == ["SpeechStarted", "SpeechStopped", "SpeechStarted"]
    stopped = events[1]
    assert isinstance(stopped, SpeechStopped)
    assert stopped.audio.duration_s == pytest.approx(1.0)


def speech_16k(path: str) -> bytes:
    with open(path, "rb") as f:
        return decode(f.read(), min_s=0.1, max_s=60, target_rate=SAMPLE_RATE).audio.pcm


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * SAMPLE_RATE) * 2)


def noise(seconds: float, level: float = 0.003) -> bytes:
    rng = np.random.default_rng(1)
    samples = rng.normal(0, level, int(seconds * SAMPLE_RATE)).astype(np.float32)
    return Audio.from_float32(samples, SAMPLE_RATE).pcm


def test_webrtc_finds_one_utterance_in_real_speech() -> None:
    speech = speech_16k(str(REPO / "tests" / "assets" / "question.wav"))
    seg = Segmenter(WebRtcClassifier(), silence_ms=600)
    events = speech_events(seg, noise(0.5) + speech + noise(1.0))
    assert kinds(events) == ["SpeechStarted", "SpeechStopped"] or (
        kinds(events)[0] == "SpeechStarted" and kinds(events)[-1] == "SpeechStopped"
    )
    assert sum(isinstance(e, SpeechStarted) for e in events) == 1
    stopped = events[-1]
    assert isinstance(stopped, SpeechStopped)
    # Most of the question is in the utterance, and not much of the noise around it.
    assert len(speech) / 2 / SAMPLE_RATE * 0.8 < stopped.audio.duration_s < 2.318 + 1.0


def test_webrtc_hears_no_speech_in_faint_noise() -> None:
    seg = Segmenter(WebRtcClassifier())
    assert speech_events(seg, noise(3.0)) == []


@pytest.mark.skipif(not SPEECH.is_dir(), reason="../shared/data/speech is absent")
def test_webrtc_separates_two_utterances_of_a_real_recording() -> None:
    speech = speech_16k(str(SPEECH / "01_jfk_16k.wav"))
    seg = Segmenter(WebRtcClassifier(), silence_ms=600)
    events = speech_events(seg, speech + silence(1.0) + speech + silence(1.0))
    assert sum(isinstance(e, SpeechStopped) for e in events) >= 2
    assert not any(isinstance(e, SpeechResumed) for e in events[-2:])


def test_two_voiced_frames_report_an_onset_before_speech_is_confirmed() -> None:
    seg = segmenter()  # speech after 100 ms (5 frames, 4 voiced)
    assert kinds(seg.push(frames("...S"))) == []
    assert kinds(seg.push(frames("S"))) == ["VoiceOnset"]
    assert kinds(seg.push(frames("SS"))) == ["SpeechStarted"]


def test_an_onset_that_does_not_become_speech_is_dismissed() -> None:
    seg = segmenter()  # dismissed 7 frames (start window and a half) after the onset
    assert kinds(seg.push(frames("SS"))) == ["VoiceOnset"]
    assert kinds(seg.push(frames("." * 6))) == []
    assert kinds(seg.push(frames("."))) == ["VoiceDismissed"]
    # A new onset may follow; a lone voiced frame (a click) is none.
    assert kinds(seg.push(frames(".S.S."))) == []
    assert kinds(seg.push(frames("SS"))) == ["VoiceOnset"]


def test_faint_noise_reports_no_onset_once_the_detector_has_adapted() -> None:
    """WebRTC's VAD calls the first few frames of a stream voiced while its noise model
    adapts; a conversation's first frames come before any answer, so nothing is paused."""
    seg = Segmenter(WebRtcClassifier())
    seg.push(noise(0.5))
    assert seg.push(noise(3.0)) == []
