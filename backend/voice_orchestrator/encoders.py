"""The codecs behind ``encoding.StreamEncoder``: each takes mono 16-bit samples at its own rate
and returns the bytes that are ready. Opus goes through PyAV's libopus and our own Ogg pages;
MP3, AAC (ADTS) and FLAC through PyAV's muxers writing into a sink that hands over what they
wrote. Pure and synchronous."""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from typing import Any, Protocol

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream
from av.packet import Packet

from .audio import wav_header
from .ogg import OPUS_GRANULE_RATE, OggOpusWriter

Samples = npt.NDArray[np.int16]

OPUS_BITRATE = 24_000
MP3_BITRATE = 48_000
AAC_BITRATE = 48_000
# The AAC encoder's priming samples. ADTS has no field for them, so decoders play them as
# leading silence; dropping the first packet instead would garble the first frame of speech.
AAC_PRIMING = 1024
# libmp3lame's encoder delay, which the LAME tag tells decoders to drop (gapless playback).
LAME_ENCODER_DELAY = 576


class Codec(Protocol):
    def write(self, samples: Samples) -> bytes:
        """Encodes ``samples``; returns the bytes ready to send."""
        ...

    def close(self) -> bytes:
        """Flushes the codec; returns the rest of the stream."""
        ...


def _frame(samples: Samples, rate: int, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    frame.time_base = Fraction(1, rate)
    frame.pts = pts
    return frame


class RawCodec:
    """Raw PCM, or WAV with streaming sizes (RIFF and data sizes 0xFFFFFFFF)."""

    def __init__(self, rate: int, *, header: bool) -> None:
        self._pending = wav_header(rate) if header else b""

    def write(self, samples: Samples) -> bytes:
        out, self._pending = self._pending + samples.astype("<i2", copy=False).tobytes(), b""
        return out

    def close(self) -> bytes:
        out, self._pending = self._pending, b""
        return out


class OpusCodec:
    """libopus (speech settings) into Ogg pages, one page per call: the OpusHead carries the
    encoder's pre-skip and the last page's granule position trims the final frame's padding, so
    decoders give back exactly the samples that went in."""

    def __init__(self, rate: int) -> None:
        codec = av.CodecContext.create("libopus", "w")
        assert isinstance(codec, av.AudioCodecContext)
        codec.sample_rate = rate
        codec.layout = "mono"
        codec.format = "s16"
        codec.bit_rate = OPUS_BITRATE
        codec.time_base = Fraction(1, rate)
        codec.options = {"application": "voip"}
        codec.open()
        self._codec = codec
        self._rate = rate
        self._ogg = OggOpusWriter(bytes(codec.extradata or b""))
        self._pending = self._ogg.headers()
        self._fed = 0  # samples given to the codec, at its rate
        self._granule = 0  # 48 kHz samples in the packets produced so far

    def write(self, samples: Samples) -> bytes:
        if samples.shape[0] == 0:
            return self._take(b"")
        packets = self._codec.encode(_frame(samples, self._rate, self._fed))
        self._fed += samples.shape[0]
        return self._take(self._ogg.pages(self._granules(packets)))

    def close(self) -> bytes:
        packets = []
        if self._fed == 0:
            # An empty answer still needs one packet to be a stream decoders open; the final
            # granule position below cuts all of it.
            silence = np.zeros(self._codec.frame_size, dtype=np.int16)
            packets = self._granules(self._codec.encode(_frame(silence, self._rate, 0)))
        packets += self._granules(self._codec.encode(None))
        end = self._ogg.pre_skip + self._fed * OPUS_GRANULE_RATE // self._rate
        # The last granule position says where the input ended; the rest is padding.
        trimmed = [(data, min(granule, end)) for data, granule in packets]
        return self._take(self._ogg.pages(trimmed, last=True))

    def _granules(self, packets: list[Packet[Any]]) -> list[tuple[bytes, int]]:
        out = []
        for packet in packets:
            duration = packet.duration or self._codec.frame_size
            self._granule += duration * OPUS_GRANULE_RATE // self._rate
            out.append((bytes(packet), self._granule))
        return out

    def _take(self, pages: bytes) -> bytes:
        out, self._pending = self._pending + pages, b""
        return out


class StreamSink:
    """Collects what a muxer writes so that it can be sent at once. It claims to be seekable so
    that the MP3 muxer writes its Xing/LAME frame; the muxer's closing rewrite of bytes already
    sent is dropped (a stream cannot take it back)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pos = 0
        self._sent = 0

    def write(self, data: bytes) -> int:
        size = len(data)
        if self._pos >= self._sent:
            self._parts.append(bytes(data))
            self._sent = self._pos + size
        self._pos += size
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._sent}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


# format -> (muxer, encoder, bit rate; 0 for lossless)
_MUXERS = {
    "mp3": ("mp3", "libmp3lame", MP3_BITRATE),
    "aac": ("adts", "aac", AAC_BITRATE),
    "flac": ("flac", "flac", 0),
}


class MuxedCodec:
    """MP3, AAC in ADTS or FLAC through PyAV's muxer. With a ``StreamSink`` each call returns
    what the muxer wrote (it writes each packet through); with a ``BytesIO`` the muxer can go
    back and complete its headers, and the caller reads the file after ``close``."""

    def __init__(self, fmt: str, rate: int, file: StreamSink | io.BytesIO) -> None:
        muxer, codec, bit_rate = _MUXERS[fmt]
        self._muxer = muxer
        # Each packet goes through to the sink; FLAC's 8 KB of header padding (room for tags
        # written later) has no use in an answer.
        options = {"flush_packets": "1", "metadata_header_padding": "0"}
        self._container = av.open(file, "w", format=muxer, container_options=options)
        stream = self._container.add_stream(codec, rate=rate)
        assert isinstance(stream, AudioStream)
        stream.layout = "mono"
        if bit_rate:
            stream.bit_rate = bit_rate
        self._stream = stream
        self._file = file
        self._rate = rate
        self._fed = 0
        self._patch_lame = fmt == "mp3" and isinstance(file, StreamSink)

    def write(self, samples: Samples) -> bytes:
        if samples.shape[0]:
            frame = _frame(samples, self._rate, self._fed)
            self._fed += samples.shape[0]
            self._container.mux(self._stream.encode(frame))
        return self._take()

    def close(self) -> bytes:
        head = b""
        if self._fed == 0 and self._muxer != "flac":
            # An empty MP3 or ADTS stream is no file at all: one frame of silence instead.
            head = self.write(np.zeros(1, dtype=np.int16))
        self._container.mux(self._stream.encode(None))
        self._container.close()
        return head + self._take()

    def _take(self) -> bytes:
        if not isinstance(self._file, StreamSink):
            return b""
        out = self._file.take()
        if self._patch_lame and out:
            self._patch_lame = False
            out = with_lame_delay(out, LAME_ENCODER_DELAY)
        return out


def with_lame_delay(data: bytes, delay: int) -> bytes:
    """``data`` (the start of an MP3 stream) with ``delay`` in its LAME tag, whose CRC is then
    recomputed. The muxer only fills the tag when it can seek back at the end; the delay is known
    from the start, the end padding is not (a streamed MP3 keeps under one frame of it)."""
    tag = data.find(b"Xing", 0, 4096)  # the muxer's placeholder says "Xing" until its rewrite
    if tag < 0:
        return data
    flags = struct.unpack_from(">I", data, tag + 4)[0]
    lame = tag + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4)
    lame += 4 * bool(flags & 8)
    # The tag follows the 4-byte frame header and the side information (9 or 17 bytes, mono).
    frame = next((tag - o for o in (13, 21) if _is_sync(data, tag - o)), -1)
    if frame < 0 or len(data) < max(lame + 36, frame + 190):
        return data
    out = bytearray(data)
    padding = int.from_bytes(out[lame + 21 : lame + 24], "big") & 0xFFF
    out[lame + 21 : lame + 24] = ((delay << 12) | padding).to_bytes(3, "big")
    out[lame + 34 : lame + 36] = b"\0\0"
    out[lame + 34 : lame + 36] = _crc16(bytes(out[frame : frame + 190])).to_bytes(2, "big")
    return bytes(out)


def _is_sync(data: bytes, pos: int) -> bool:
    return pos >= 0 and data[pos] == 0xFF and data[pos + 1] & 0xE0 == 0xE0


def _crc16(data: bytes) -> int:
    """CRC-16/ARC (polynomial 0x8005 reflected), as the LAME tag's CRC."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc
