"""Answer formats: content negotiation and encoders for the spoken answer (Ogg/Opus, MP3, AAC in
ADTS, FLAC, WAV, raw PCM), streamed or whole. Pure and synchronous: callers on the event loop run
``StreamEncoder.encode``/``finish`` and ``encode_whole`` through ``asyncio.to_thread``."""

from __future__ import annotations

import io
from enum import StrEnum
from typing import Any

import numpy as np
import soxr

from .audio import Audio, encode_wav
from .encoders import Codec, MuxedCodec, OpusCodec, RawCodec, StreamSink
from .errors import InvalidRequest


class OutputFormat(StrEnum):
    OPUS = "opus"
    MP3 = "mp3"
    AAC = "aac"
    FLAC = "flac"
    WAV = "wav"
    PCM = "pcm"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]


_CONTENT_TYPES = {
    OutputFormat.OPUS: "audio/ogg",
    OutputFormat.MP3: "audio/mpeg",
    OutputFormat.AAC: "audio/aac",
    OutputFormat.FLAC: "audio/flac",
    OutputFormat.WAV: "audio/wav",
    OutputFormat.PCM: "audio/pcm",
}
# Media types a client may name in Accept; application/json is the router's business.
_MEDIA_TYPES = {
    "audio/ogg": OutputFormat.OPUS,
    "audio/opus": OutputFormat.OPUS,
    "audio/mpeg": OutputFormat.MP3,
    "audio/mp3": OutputFormat.MP3,
    "audio/aac": OutputFormat.AAC,
    "audio/mp4": OutputFormat.AAC,
    "audio/flac": OutputFormat.FLAC,
    "audio/x-flac": OutputFormat.FLAC,
    "audio/wav": OutputFormat.WAV,
    "audio/x-wav": OutputFormat.WAV,
    "audio/wave": OutputFormat.WAV,
    "audio/vnd.wave": OutputFormat.WAV,
    "audio/pcm": OutputFormat.PCM,
}
# What a wildcard stands for, first choice first: WAV plays everywhere.
_WILDCARD_ORDER = (
    OutputFormat.WAV,
    OutputFormat.OPUS,
    OutputFormat.MP3,
    OutputFormat.AAC,
    OutputFormat.FLAC,
    OutputFormat.PCM,
)


def negotiate(accept: str | None, explicit: str | None) -> OutputFormat:
    """The answer's format: ``explicit`` (a ``response_format`` value) when given, else the best
    of ``Accept``: highest quality first, a named type before one only a wildcard covers, then
    the order given. ``q=0`` excludes a type. No Accept, only a wildcard, or nothing acceptable
    gives WAV.

    Raises InvalidRequest for an unknown explicit format.
    """
    if explicit is not None:
        try:
            return OutputFormat(explicit.strip().lower())
        except ValueError:
            supported = ", ".join(f.value for f in OutputFormat)
            raise InvalidRequest(
                f"Unsupported response_format {explicit[:40]!r}; supported: {supported}."
            ) from None
    named: dict[OutputFormat, tuple[float, int]] = {}
    wildcard = 0.0
    for position, (media, q) in enumerate(_accept_entries(accept or "")):
        if media in ("*/*", "audio/*"):
            wildcard = max(wildcard, q)
        elif (fmt := _MEDIA_TYPES.get(media)) is not None:
            # The most specific entry decides; among aliases of one format, the best one.
            q_before, first = named.get(fmt, (q, position))
            named[fmt] = (0.0 if min(q, q_before) <= 0 else max(q, q_before), first)
    ranked = [(q, 1, -position, fmt) for fmt, (q, position) in named.items() if q > 0]
    ranked += [
        (wildcard, 0, -order, fmt)
        for order, fmt in enumerate(_WILDCARD_ORDER)
        if wildcard > 0 and fmt not in named
    ]
    return max(ranked)[3] if ranked else OutputFormat.WAV


def _accept_entries(accept: str) -> list[tuple[str, float]]:
    """(media type, quality) pairs of an Accept header; entries with a malformed quality are
    skipped."""
    entries = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        try:
            for param in params:
                name, _, value = param.partition("=")
                if name.strip().lower() == "q":
                    q = float(value)
        except ValueError:
            continue
        if media and q == q:  # NaN is malformed too
            entries.append((media.lower(), min(q, 1.0)))
    return entries


# Opus codes these rates natively; any other rate is resampled to the next one up.
OPUS_RATES = (8_000, 12_000, 16_000, 24_000, 48_000)
MP3_RATES = (8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
AAC_RATES = (*MP3_RATES, 64_000, 88_200, 96_000)
_RATES = {OutputFormat.OPUS: OPUS_RATES, OutputFormat.MP3: MP3_RATES, OutputFormat.AAC: AAC_RATES}


def output_rate(fmt: OutputFormat, sample_rate: int) -> int:
    """The rate ``fmt`` is encoded at for input at ``sample_rate``."""
    rates = _RATES.get(fmt)
    if rates is None or sample_rate in rates:
        return sample_rate
    return next((r for r in rates if r >= sample_rate), rates[-1])


class StreamEncoder:
    """Encodes one answer piece by piece: ``encode`` returns the bytes that can be sent now
    (whole Ogg pages, MP3 or ADTS frames), ``finish`` the rest. One answer, one thread at a
    time."""

    def __init__(self, fmt: OutputFormat, sample_rate: int) -> None:
        self.format = fmt
        self.input_rate = sample_rate
        self.sample_rate = output_rate(fmt, sample_rate)
        self._resampler: Any = None
        if self.sample_rate != sample_rate:
            self._resampler = soxr.ResampleStream(
                sample_rate, self.sample_rate, 1, dtype="int16", quality="HQ"
            )
        self._codec = _codec(fmt, self.sample_rate, StreamSink())
        self._finished = False

    def headers(self) -> dict[str, str]:
        """Content-Type, X-Output-Format and X-Output-Sample-Rate of the answer."""
        return {
            "Content-Type": self.format.content_type,
            "X-Output-Format": self.format.value,
            "X-Output-Sample-Rate": str(self.sample_rate),
        }

    def encode(self, audio: Audio) -> bytes:
        """Encodes ``audio`` (at the rate given at construction); returns the bytes ready."""
        if self._finished:
            raise RuntimeError("the encoder is finished")
        if audio.sample_rate != self.input_rate:
            raise ValueError(f"audio at {audio.sample_rate} Hz, encoder at {self.input_rate} Hz")
        samples = np.frombuffer(audio.pcm, dtype="<i2", count=audio.frames)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples, last=False)
        return self._codec.write(samples)

    def finish(self) -> bytes:
        """The rest of the stream (the codec's last frames, the end of stream); b"" once
        finished."""
        if self._finished:
            return b""
        self._finished = True
        tail = b""
        if self._resampler is not None:
            rest = self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
            tail = self._codec.write(rest)
        return tail + self._codec.close()


def encode_whole(audio: Audio, fmt: OutputFormat) -> bytes:
    """``audio`` in ``fmt`` at once. MP3 and FLAC get the headers only a file can have (MP3's
    end padding for gapless playback, FLAC's length and MD5)."""
    if fmt is OutputFormat.WAV:
        return encode_wav(audio)
    if fmt is OutputFormat.PCM:
        return audio.pcm
    if fmt not in (OutputFormat.MP3, OutputFormat.FLAC):
        encoder = StreamEncoder(fmt, audio.sample_rate)
        return encoder.encode(audio) + encoder.finish()
    rate = output_rate(fmt, audio.sample_rate)
    samples = np.frombuffer(audio.pcm, dtype="<i2", count=audio.frames)
    if rate != audio.sample_rate:
        samples = soxr.resample(samples, audio.sample_rate, rate, quality="HQ")
    file = io.BytesIO()
    codec = MuxedCodec(fmt.value, rate, file)
    codec.write(samples)
    codec.close()
    return file.getvalue()


def _codec(fmt: OutputFormat, rate: int, sink: StreamSink) -> Codec:
    if fmt is OutputFormat.OPUS:
        return OpusCodec(rate)
    if fmt in (OutputFormat.WAV, OutputFormat.PCM):
        return RawCodec(rate, header=fmt is OutputFormat.WAV)
    return MuxedCodec(fmt.value, rate, sink)
