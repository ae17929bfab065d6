"""Property tests of the decoder over arbitrary bytes and mutated real headers: a valid decode
or a validation error, never a crash or a hang."""

from __future__ import annotations

import concurrent.futures
import io
import struct

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voice_orchestrator.audio import decode
from voice_orchestrator.errors import AudioTooLong, AudioTooShort, InvalidAudio

from ..conftest import HANG_S

ACCEPTABLE = (InvalidAudio, AudioTooShort, AudioTooLong)
POOL = concurrent.futures.ThreadPoolExecutor(max_workers=1)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def real(fmt: str, subtype: str, rate: int = 16_000, channels: int = 1) -> bytes:
    t = np.arange(int(0.8 * rate)) / rate
    data = np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * channels, axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, subtype=subtype, format=fmt)
    return buffer.getvalue()


WAV = real("WAV", "PCM_16")
WAV_FLOAT = real("WAV", "FLOAT", 44_100, 2)
FLAC = real("FLAC", "PCM_24", 48_000)


def check(data: bytes) -> None:
    """Decodes in a worker thread; a hang fails after the hang guard instead of stalling the
    suite forever."""
    future = POOL.submit(_decode, data)
    outcome = future.result(timeout=HANG_S)
    if isinstance(outcome, BaseException):
        raise outcome


def _decode(data: bytes) -> object:
    try:
        result = decode(data, min_s=0.1, max_s=60, target_rate=16_000)
    except ACCEPTABLE:
        return None
    except Exception as e:  # anything else is the bug this test looks for
        return e
    assert result.audio.frames > 0
    assert result.audio.sample_rate == 16_000
    assert len(result.audio.pcm) % 2 == 0
    return None


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(
    base=st.sampled_from([WAV, WAV_FLOAT, FLAC]),
    flips=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 200_000),
)
def test_mutated_headers_and_truncation(
    base: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(base[: max(1, cut)])
    for offset, value in flips:
        if offset < len(data):
            data[offset] = value
    check(bytes(data))


def wav_with(*, channels: int = 1, rate: int = 16_000, bits: int = 16, data_size: int | None = None,
             riff_size: int | None = None, frames: int = 8000) -> bytes:  # fmt: skip
    block = (channels * bits // 8) % 2**16
    payload = bytes(min(frames * max(block, 1), 64_000))
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) % 2**32, block, bits)
    size = len(payload) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size)
    riff = 4 + 24 + 8 + len(payload) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", riff) + body + payload


@FUZZ
@given(
    channels=st.sampled_from([0, 1, 2, 3, 255, 65535]),
    rate=st.sampled_from([0, 1, 2, 7999, 8000, 16_000, 48_000, 192_000, 2**31 - 1, 2**32 - 1]),
    bits=st.sampled_from([0, 1, 8, 12, 16, 24, 32, 64]),
    data_size=st.sampled_from([None, 0, 1, 2**31, 2**32 - 1]),
    riff_size=st.sampled_from([None, 0, 2**32 - 1]),
)
def test_absurd_wav_headers(
    channels: int, rate: int, bits: int, data_size: int | None, riff_size: int | None
) -> None:
    check(wav_with(channels=channels, rate=rate, bits=bits, data_size=data_size,
                   riff_size=riff_size))  # fmt: skip
