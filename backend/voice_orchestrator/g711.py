"""G.711 μ-law and A-law companding between 8-bit codes and 16-bit PCM (little endian).

The tables follow Sun Microsystems' reference ``g711.c`` (the code the former ``audioop``
module used): decoding gives the ITU-T G.711 reconstruction levels scaled to 16 bits, encoding
quantizes a 16-bit sample through its 14-bit (μ-law) or 13-bit (A-law) top bits. Both directions
are a single table lookup over numpy arrays, built once when the module is imported.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "alaw_decode",
    "alaw_encode",
    "alaw_to_linear",
    "linear_to_alaw",
    "linear_to_ulaw",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_to_linear",
]

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # largest 14-bit magnitude before the bias is added
# Upper ends of the eight segments, on the biased 14-bit μ-law and the 13-bit A-law scale.
_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    level = (((code & 0x0F) << 3) + _ULAW_BIAS) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, _ULAW_BIAS - level, level - _ULAW_BIAS).astype(np.int16)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    level: npt.NDArray[np.int32] = ((code & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    level <<= np.maximum(segment - 1, 0)
    return np.where(code & 0x80, level, -level).astype(np.int16)


def _all_samples() -> npt.NDArray[np.int32]:
    """Every int16 value, ordered by its bit pattern read as uint16 (the lookup index)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    sample = _all_samples() >> 2
    negative = sample < 0
    magnitude = np.minimum(np.where(negative, -sample, sample), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    mask = np.where(negative, 0x7F, 0xFF)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="left")
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> (np.minimum(segment, 7) + 1)) & 0x0F)
    return np.where(segment >= 8, 0x7F ^ mask, code ^ mask).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    sample = _all_samples() >> 3
    negative = sample < 0
    # One's complement for negatives keeps the two halves symmetric around zero.
    magnitude = np.where(negative, -sample - 1, sample)
    mask = np.where(negative, 0x55, 0xD5)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude, side="left")
    shift = np.where(segment < 2, 1, np.minimum(segment, 7))
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0x0F)
    return np.where(segment >= 8, 0x7F ^ mask, code ^ mask).astype(np.uint8)


_ULAW_TO_LINEAR = _ulaw_decode_table()
_ALAW_TO_LINEAR = _alaw_decode_table()
_LINEAR_TO_ULAW = _ulaw_encode_table()
_LINEAR_TO_ALAW = _alaw_encode_table()
for _table in (_ULAW_TO_LINEAR, _ALAW_TO_LINEAR, _LINEAR_TO_ULAW, _LINEAR_TO_ALAW):
    _table.flags.writeable = False


def ulaw_to_linear(codes: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """μ-law codes as 16-bit samples."""
    return _ULAW_TO_LINEAR[codes]


def alaw_to_linear(codes: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """A-law codes as 16-bit samples."""
    return _ALAW_TO_LINEAR[codes]


def linear_to_ulaw(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """16-bit samples as μ-law codes."""
    return _LINEAR_TO_ULAW[samples.view(np.uint16)]


def linear_to_alaw(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """16-bit samples as A-law codes."""
    return _LINEAR_TO_ALAW[samples.view(np.uint16)]


def ulaw_decode(data: bytes | bytearray | memoryview) -> bytes:
    """μ-law bytes (one sample each) as 16-bit PCM, little endian."""
    return _decode(data, _ULAW_TO_LINEAR)


def alaw_decode(data: bytes | bytearray | memoryview) -> bytes:
    """A-law bytes (one sample each) as 16-bit PCM, little endian."""
    return _decode(data, _ALAW_TO_LINEAR)


def ulaw_encode(pcm: bytes | bytearray | memoryview) -> bytes:
    """16-bit PCM, little endian, as μ-law bytes. Raises ValueError on an odd byte count."""
    return _encode(pcm, _LINEAR_TO_ULAW)


def alaw_encode(pcm: bytes | bytearray | memoryview) -> bytes:
    """16-bit PCM, little endian, as A-law bytes. Raises ValueError on an odd byte count."""
    return _encode(pcm, _LINEAR_TO_ALAW)


def _decode(data: bytes | bytearray | memoryview, table: npt.NDArray[np.int16]) -> bytes:
    codes = np.frombuffer(data, dtype=np.uint8)
    return table[codes].astype("<i2", copy=False).tobytes()


def _encode(pcm: bytes | bytearray | memoryview, table: npt.NDArray[np.uint8]) -> bytes:
    if len(pcm) % 2:
        raise ValueError("16-bit PCM needs an even number of bytes")
    codes: npt.NDArray[np.uint8] = table[np.frombuffer(pcm, dtype="<u2")]
    return codes.tobytes()
