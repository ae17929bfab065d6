"""G.711 μ-law and A-law against the reference values of Sun's g711.c and the former audioop."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from voice_orchestrator import g711

Encoder = Callable[[np.ndarray], np.ndarray]
Decoder = Callable[[np.ndarray], np.ndarray]

ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)


def samples(pcm: bytes) -> list[int]:
    return np.frombuffer(pcm, dtype="<i2").tolist()


@pytest.mark.parametrize(
    ("code", "value"),
    [(0xFF, 0), (0x7F, 0), (0x00, -32124), (0x80, 32124), (0xFE, 8), (0x7E, -8)],
)
def test_ulaw_decodes_to_the_reference_levels(code: int, value: int) -> None:
    assert samples(g711.ulaw_decode(bytes([code]))) == [value]


@pytest.mark.parametrize(
    ("code", "value"), [(0xD5, 8), (0x55, -8), (0x2A, -32256), (0xAA, 32256), (0x00, -5504)]
)
def test_alaw_decodes_to_the_reference_levels(code: int, value: int) -> None:
    assert samples(g711.alaw_decode(bytes([code]))) == [value]


def test_first_table_rows_match_the_published_tables() -> None:
    # The first sixteen entries of the decoding tables printed in Sun's g711.c derivatives.
    assert samples(g711.ulaw_decode(ALL_CODES[:16])) == list(range(-32124, -16763, 1024))
    assert samples(g711.alaw_decode(ALL_CODES[:16])) == [
        -5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736,
        -7552, -7296, -8064, -7808, -6528, -6272, -7040, -6784,
    ]  # fmt: skip


def test_every_ulaw_code_survives_a_round_trip_except_negative_zero() -> None:
    back = g711.ulaw_encode(g711.ulaw_decode(ALL_CODES))
    assert [code for code in range(256) if back[code] != code] == [0x7F]
    assert back[0x7F] == 0xFF  # both zeros encode as the positive one


def test_every_alaw_code_survives_a_round_trip() -> None:
    assert g711.alaw_encode(g711.alaw_decode(ALL_CODES)) == ALL_CODES


@pytest.mark.parametrize(
    ("encode", "decode", "top"),
    [
        (g711.linear_to_ulaw, g711.ulaw_to_linear, 32124),
        (g711.linear_to_alaw, g711.alaw_to_linear, 32256),
    ],
    ids=["ulaw", "alaw"],
)
def test_quantization_is_monotonic_with_bounded_error(
    encode: Encoder, decode: Decoder, top: int
) -> None:
    back = decode(encode(ALL_SAMPLES)).astype(np.int32)
    assert np.all(np.diff(back) >= 0)
    exact = ALL_SAMPLES.astype(np.int32)
    inside = np.abs(exact) <= top
    # Half a quantization step: the step doubles with each segment, 1/16 of the magnitude.
    assert np.all(np.abs(back - exact)[inside] <= np.abs(exact)[inside] / 32 + 8)
    assert back.min() == -top
    assert back.max() == top


def test_bytes_and_arrays_agree() -> None:
    pcm = ALL_SAMPLES.astype("<i2").tobytes()
    assert g711.ulaw_encode(pcm) == g711.linear_to_ulaw(ALL_SAMPLES).tobytes()
    assert g711.alaw_encode(bytearray(pcm)) == g711.linear_to_alaw(ALL_SAMPLES).tobytes()
    codes = np.arange(256, dtype=np.uint8)
    assert g711.ulaw_decode(memoryview(ALL_CODES)) == g711.ulaw_to_linear(codes).tobytes()


def test_empty_and_odd_input() -> None:
    assert g711.ulaw_encode(b"") == b""
    assert g711.alaw_decode(b"") == b""
    with pytest.raises(ValueError, match="even"):
        g711.ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="even"):
        g711.alaw_encode(b"\x00")


def test_silence_is_the_idle_code() -> None:
    assert g711.ulaw_encode(bytes(320)) == b"\xff" * 160
    assert g711.alaw_encode(bytes(320)) == b"\xd5" * 160


def _audioop() -> ModuleType:
    """The standard library codec where it still exists (removed in Python 3.13)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")


def test_identical_to_audioop_over_every_code_and_sample() -> None:
    audioop = _audioop()
    pcm = ALL_SAMPLES.astype("<i2").tobytes()
    assert g711.ulaw_decode(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)
    assert g711.alaw_decode(ALL_CODES) == audioop.alaw2lin(ALL_CODES, 2)
    assert g711.ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)
    assert g711.alaw_encode(pcm) == audioop.lin2alaw(pcm, 2)
