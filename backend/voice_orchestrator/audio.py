"""The ``Audio`` value type and the pure, synchronous audio work: decode, validate, resample,
encode. Callers on the event loop run these through ``asyncio.to_thread``."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from .containers import decode_container, demuxer_for
from .errors import AudioTooLong, AudioTooShort, InvalidAudio

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 64
# RIFF and data sizes of a WAV whose length is not known when its header is sent.
STREAMING_SIZE = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Audio:
    """Mono 16-bit PCM (little endian) at ``sample_rate``."""

    pcm: bytes
    sample_rate: int

    @property
    def frames(self) -> int:
        return len(self.pcm) // 2

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    def to_float32(self) -> npt.NDArray[np.float32]:
        samples = np.frombuffer(self.pcm, dtype="<i2").astype(np.float32)
        samples /= 32768.0
        return samples

    @classmethod
    def from_float32(cls, samples: npt.NDArray[np.floating], sample_rate: int) -> Audio:
        clipped = np.clip(samples, -1.0, 1.0) * 32767.0
        return cls(np.round(clipped).astype("<i2").tobytes(), sample_rate)

    @classmethod
    def concatenate(cls, parts: list[Audio], sample_rate: int) -> Audio:
        """Joins parts of one rate; an empty list gives empty audio at ``sample_rate``."""
        if any(part.sample_rate != sample_rate for part in parts):
            raise ValueError("cannot concatenate audio of different sample rates")
        return cls(b"".join(part.pcm for part in parts), sample_rate)


@dataclass(frozen=True, slots=True)
class DecodedInput:
    """An upload after decoding: mono audio at the rate the STT wants, plus what was received."""

    audio: Audio
    source_sample_rate: int
    channels: int
    duration_s: float
    format: str


def decode(data: bytes, *, min_s: float, max_s: float, target_rate: int | None) -> DecodedInput:
    """Decodes anything libsndfile reads (and WebM/MP4 through PyAV), checks the duration
    limits, downmixes to mono and resamples to ``target_rate`` (kept as is when None).

    Raises InvalidAudio, AudioTooShort or AudioTooLong.
    """
    if not data:
        raise InvalidAudio("The audio is empty.")
    pcm16 = _pcm16_wav(data)
    if pcm16 is not None:
        return _decode_pcm16(*pcm16, min_s=min_s, max_s=max_s, target_rate=target_rate)
    demuxer = demuxer_for(data)
    if demuxer in ("matroska", "mp4"):
        mono, rate, channels, fmt = decode_container(data, demuxer, max_s=max_s)
    else:
        try:
            mono, rate, channels, fmt = _decode_sndfile(data, max_s=max_s)
        except InvalidAudio:
            if demuxer is None:
                raise
            # Ogg and MP3 variants libsndfile does not read.
            mono, rate, channels, fmt = decode_container(data, demuxer, max_s=max_s)
    duration = _checked_duration(mono.shape[0], rate, min_s=min_s, max_s=max_s)
    if not np.isfinite(mono).all():
        raise InvalidAudio("The audio holds samples that are not finite numbers.")
    out_rate = target_rate or rate
    if out_rate != rate:
        mono = soxr.resample(mono, rate, out_rate, quality="HQ")
    return DecodedInput(
        audio=Audio.from_float32(mono, out_rate),
        source_sample_rate=rate,
        channels=channels,
        duration_s=duration,
        format=fmt,
    )


def _checked_duration(frames: int, rate: int, *, min_s: float, max_s: float) -> float:
    """The duration of ``frames`` at ``rate``; raises when the rate or the duration is out of
    bounds."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidAudio(f"Unsupported sample rate {rate} Hz.")
    if frames == 0:
        raise InvalidAudio("The audio has no frames.")
    if frames > int(max_s * rate):
        raise AudioTooLong(f"The audio lasts more than {max_s:g} s.")
    duration = frames / rate
    if duration < min_s:
        raise AudioTooShort(f"The audio lasts {duration:.3f} s; the minimum is {min_s:g} s.")
    return duration


def _decode_pcm16(
    payload: memoryview,
    rate: int,
    channels: int,
    *,
    min_s: float,
    max_s: float,
    target_rate: int | None,
) -> DecodedInput:
    """The common upload, 16-bit PCM WAV, without a float round trip: mono at the target rate
    passes through as it came."""
    if channels > MAX_CHANNELS:
        raise InvalidAudio(f"Unsupported channel count {channels}.")
    frames = len(payload) // (2 * channels)
    duration = _checked_duration(frames, rate, min_s=min_s, max_s=max_s)
    out_rate = target_rate or rate
    if channels == 1 and out_rate == rate:
        audio = Audio(bytes(payload[: 2 * frames]), rate)
    else:
        mono = _downmixed(payload, channels)
        if out_rate != rate:
            mono = soxr.resample(mono, rate, out_rate, quality="HQ")
        audio = Audio.from_float32(mono, out_rate)
    return DecodedInput(audio, rate, channels, duration, "WAV")


def _downmixed(payload: memoryview, channels: int) -> npt.NDArray[np.float32]:
    """Interleaved 16-bit frames (a partial last frame dropped) as mono float samples."""
    frames = len(payload) // (2 * channels)
    samples = np.frombuffer(payload, dtype="<i2", count=frames * channels)
    mono: npt.NDArray[np.float32] = samples.reshape(frames, channels).mean(axis=1, dtype=np.float32)
    return mono / np.float32(32768.0)


def _pcm16_wav(data: bytes) -> tuple[memoryview, int, int] | None:
    """The samples, rate and channels of a plain 16-bit PCM WAV (a data size of 0xFFFFFFFF
    means "to the end", as streaming writers send it); None for anything else."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        body = pos + 8
        if chunk_id == b"fmt " and size >= 16 and body + 16 <= len(data):
            fmt = struct.unpack_from("<HHIIHH", data, body)
        elif chunk_id == b"data":
            if fmt is None or size == 0:
                return None
            tag, channels, rate, _, _, bits = fmt
            if tag != 1 or bits != 16 or rate <= 0 or channels < 1:
                return None
            end = len(data) if size == STREAMING_SIZE else min(len(data), body + size)
            return memoryview(data)[body:end], rate, channels
        pos = body + size + (size & 1)
    return None


def _decode_sndfile(data: bytes, *, max_s: float) -> tuple[npt.NDArray[np.float32], int, int, str]:
    """Decodes with libsndfile, downmixed; never reads past the duration limit."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels, declared, fmt = f.samplerate, f.channels, f.frames, f.format
            if channels < 1 or channels > MAX_CHANNELS:
                raise InvalidAudio(f"Unsupported channel count {channels}.")
            if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
                raise InvalidAudio(f"Unsupported sample rate {rate} Hz.")
            if declared > 0 and declared / rate > max_s:
                seconds = declared / rate
                raise AudioTooLong(f"The audio lasts {seconds:.1f} s; the limit is {max_s:g} s.")
            # Never read more than the limit allows, whatever the header declares.
            samples = f.read(frames=int(max_s * rate) + 1, dtype="float32", always_2d=True)
    except (AudioTooLong, InvalidAudio):
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, MemoryError, EOFError) as e:
        raise InvalidAudio("The audio could not be decoded.") from e
    mono = samples.mean(axis=1) if channels > 1 else samples[:, 0]
    return mono.astype(np.float32, copy=False), rate, channels, fmt


def resample(audio: Audio, rate: int) -> Audio:
    """Returns ``audio`` at ``rate`` (itself when already there)."""
    if audio.sample_rate == rate or audio.frames == 0:
        return Audio(audio.pcm, rate) if audio.frames == 0 else audio
    return Audio.from_float32(soxr.resample(audio.to_float32(), audio.sample_rate, rate), rate)


def wav_header(sample_rate: int, data_bytes: int = STREAMING_SIZE) -> bytes:
    """A 44-byte header of 16-bit mono PCM. The default sizes mark a stream of unknown length."""
    riff_size = STREAMING_SIZE if data_bytes == STREAMING_SIZE else 36 + data_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff_size,
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        sample_rate,
        sample_rate * 2,
        2,
        16,
        b"data",
        data_bytes,
    )


def encode_wav(audio: Audio) -> bytes:
    """16-bit PCM mono WAV of ``audio``."""
    return wav_header(audio.sample_rate, len(audio.pcm)) + audio.pcm


def parse_wav(data: bytes) -> Audio:
    """Reads a WAV as an upstream TTS sends it, streaming sizes included, at its real rate.

    16-bit PCM is read directly; anything else goes through libsndfile. Raises ValueError when
    the bytes are not usable audio.
    """
    pcm16 = _pcm16_wav(data)
    if pcm16 is not None:
        payload, rate, channels = pcm16
        if channels == 1:
            return Audio(bytes(payload[: len(payload) // 2 * 2]), rate)
        return Audio.from_float32(_downmixed(payload, channels), rate)
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise ValueError("not decodable audio") from e
    return Audio.from_float32(samples.mean(axis=1), int(rate))
