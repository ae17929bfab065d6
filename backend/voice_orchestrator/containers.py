"""Compressed containers that browsers and phones send (WebM/Opus, MP4/AAC, and Ogg or MP3
when libsndfile refuses them), decoded with PyAV's bundled FFmpeg.

Only these demuxers are ever used, chosen by the file's magic bytes, never by FFmpeg's probing of
arbitrary input. Decoding is bounded: it stops past the duration limit, a file whose declared
length is implausible for its size is refused before decoding, and so is one that inflates beyond
any real codec's ratio (a decompression bomb).
"""

from __future__ import annotations

import io
import time

import av
import numpy as np
import numpy.typing as npt

from .errors import AudioTooLong, InvalidAudio

# Fewer bytes a second than any real speech codec produces (Opus goes down to ~750 B/s).
MIN_BYTES_PER_DECLARED_S = 300
# Decoded float32 mono bytes per input byte beyond which the input is a bomb (Opus at 6 kb/s
# into 48 kHz float is about 256).
MAX_INFLATION = 2_000
MAX_DECODE_S = 10.0


def demuxer_for(data: bytes) -> str | None:
    """The FFmpeg demuxer for a container recognised by its magic bytes, else None."""
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if data[4:8] == b"ftyp":
        return "mp4"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def decode_container(
    data: bytes, demuxer: str, *, max_s: float
) -> tuple[npt.NDArray[np.float32], int, int, str]:
    """Decodes the first audio stream to mono float32 at its own rate.

    Returns (samples, sample_rate, channels, format name). Raises InvalidAudio or AudioTooLong.
    """
    started = time.monotonic()
    try:
        with av.open(io.BytesIO(data), mode="r", format=demuxer) as container:
            streams = container.streams.audio
            if not streams:
                raise InvalidAudio("The file holds no audio stream.")
            stream = streams[0]
            rate, channels = stream.rate, stream.channels
            if not rate or not channels:
                raise InvalidAudio("The audio stream has no sample rate or channels.")
            if container.duration is not None:
                declared_s = container.duration / av.time_base
                if declared_s > max_s:
                    if len(data) < declared_s * MIN_BYTES_PER_DECLARED_S:
                        raise InvalidAudio("The file claims a duration its size cannot hold.")
                    raise AudioTooLong(f"The audio lasts more than {max_s:g} s.")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            max_frames = int(max_s * rate) + 1
            parts: list[npt.NDArray[np.float32]] = []
            decoded = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    part = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    parts.append(part)
                    decoded += part.shape[0]
                if decoded * 4 > MAX_INFLATION * len(data):
                    raise InvalidAudio("The audio inflates beyond any real codec's ratio.")
                if decoded >= max_frames:
                    raise AudioTooLong(f"The audio lasts more than {max_s:g} s.")
                if time.monotonic() - started > MAX_DECODE_S:
                    raise InvalidAudio("The audio took too long to decode.")
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
            name = container.format.name.split(",")[0].upper()
    except (InvalidAudio, AudioTooLong):
        raise
    except (av.FFmpegError, ValueError, IndexError, OverflowError, MemoryError) as e:
        raise InvalidAudio("The audio could not be decoded.") from e
    samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return samples, int(rate), int(channels), name
