"""Audio out of a speech body while it arrives: raw PCM, or a WAV whose header may come in
pieces and whose sizes may be unknown (0xFFFFFFFF or 0, as streaming servers write them).

``AudioStreamDecoder`` is pure and synchronous; ``SpeechBody`` reads an open response through
it, with a timeout on each read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import httpx2
import numpy as np

from ..audio import STREAMING_SIZE, Audio, parse_wav
from ..errors import ProviderTimeout

logger = logging.getLogger(__name__)

# (stage, reason): a body that ended early after audio had been handed on.
CutHook = Callable[[str, str], None]

# Pieces handed on are at most this long; a rest shorter than the minimum waits for the next
# read (the first piece of a body excepted: it leaves as soon as it holds one sample).
PIECE_MS = 40
MIN_PIECE_MS = 20
# A header (RIFF, fmt, LIST and the like) longer than this is not a speech server's WAV.
MAX_HEADER_BYTES = 64 * 1024
PCM = 1


class AudioStreamDecoder:
    """``feed(bytes)`` returns the audio completed so far, ``finish()`` the rest at the end of
    the body. Both raise ValueError for bytes that are not usable audio."""

    def __init__(self, response_format: str, pcm_sample_rate: int) -> None:
        self._wav = response_format == "wav"
        self._head = bytearray()  # a WAV header until its data chunk starts
        self._whole: bytearray | None = None  # a WAV that is not 16-bit PCM, kept to the end
        self._pending = bytearray()
        self._rate = pcm_sample_rate
        self._channels = 1
        self._left: int | None = None  # data bytes the header declared and not yet received
        self._started = not self._wav
        self._emitted = False

    @property
    def short(self) -> bool:
        """Whether the body ended before the data size its WAV header declared."""
        return bool(self._left)

    def feed(self, data: bytes) -> list[Audio]:
        if self._whole is not None:
            self._whole += data
            return []
        if not self._started:
            self._head += data
            data = self._parse_header()
            if not self._started or self._whole is not None:
                return []
        if self._left is not None:
            data = data[: self._left]
            self._left -= len(data)
        self._pending += data
        return self._pieces(final=False)

    def finish(self) -> list[Audio]:
        if self._whole is not None:
            self._emitted = True
            return [parse_wav(bytes(self._whole))]
        if not self._started:
            raise ValueError("the body ended inside the WAV header")
        # A partial sample at the very end is dropped: it cannot be played.
        return self._pieces(final=True)

    def _pieces(self, *, final: bool) -> list[Audio]:
        frame = 2 * self._channels
        piece = max(1, self._rate * PIECE_MS // 1000) * frame
        least = 1 if final or not self._emitted else self._rate * MIN_PIECE_MS // 1000 * frame
        whole = len(self._pending) - len(self._pending) % frame
        cuts = list(range(0, whole - piece + 1, piece))
        rest = cuts[-1] + piece if cuts else 0
        if whole - rest >= max(frame, least):
            cuts.append(rest)
            rest = whole
        if not cuts:
            return []
        ends = [*cuts[1:], rest]
        ready = bytes(self._pending[:rest])
        del self._pending[:rest]
        pieces = [self._audio(ready[a:b]) for a, b in zip(cuts, ends, strict=True)]
        self._emitted = True
        return pieces

    def _audio(self, data: bytes) -> Audio:
        if self._channels == 1:
            return Audio(data, self._rate)
        samples = np.frombuffer(data, dtype="<i2").reshape(-1, self._channels)
        mono = samples.mean(axis=1, dtype=np.float32) / np.float32(32768.0)
        return Audio.from_float32(mono, self._rate)

    def _parse_header(self) -> bytes:
        """Walks the header's chunks; at the data chunk, returns the bytes after its header."""
        head = self._head
        if len(head) >= 12 and (head[:4] != b"RIFF" or head[8:12] != b"WAVE"):
            raise ValueError("not a WAV")
        pos, fmt = 12, None
        while pos + 8 <= len(head):
            chunk_id, size = struct.unpack_from("<4sI", head, pos)
            body = pos + 8
            if chunk_id == b"data":
                if fmt is None:
                    raise ValueError("a WAV without a fmt chunk")
                tag, channels, rate, _, _, bits = fmt
                if tag != PCM or bits != 16 or channels < 1 or rate <= 0:
                    # Float, 24-bit and the like: read whole at the end, as before.
                    self._whole = bytearray(head)
                    self._started = True
                    return b""
                self._rate, self._channels = rate, channels
                self._left = None if size in (0, STREAMING_SIZE) else size
                self._started = True
                rest = bytes(head[body:])
                self._head = bytearray()
                return rest
            if body + size > len(head):
                break  # the rest of this chunk is still on its way
            if chunk_id == b"fmt ":
                if size < 16:
                    raise ValueError("a WAV fmt chunk too short")
                fmt = struct.unpack_from("<HHIIHH", head, body)
            pos = body + size + (size & 1)
        if len(head) > MAX_HEADER_BYTES:
            raise ValueError("a WAV header too long")
        return b""


class SpeechBody:
    """An open speech response: ``first`` holds the audio read before anything was handed on
    (so a failure until then can be retried), ``rest()`` the audio after it."""

    def __init__(
        self,
        stack: contextlib.AsyncExitStack,
        chunks: AsyncIterator[bytes],
        decoder: AudioStreamDecoder,
    ) -> None:
        self._stack = stack
        self._chunks = chunks
        self._decoder = decoder
        self._ended = False
        self.first: list[Audio] = []
        close = getattr(chunks, "aclose", None)
        if close is not None:
            stack.push_async_callback(close)

    async def read_first(self) -> None:
        """Reads until there is audio or the body ends; the caller bounds the time."""
        while not self.first:
            data = await anext(self._chunks, None)
            if data is None:
                self._ended = True
                self.first = self._decoder.finish()
                return
            self.first = self._decoder.feed(data)

    async def rest(self, gap_s: float, on_cut: CutHook | None) -> AsyncGenerator[Audio, None]:
        """The audio after ``first``. A gap longer than ``gap_s`` raises ProviderTimeout; a body
        cut off ends it, logged and told to ``on_cut``."""
        if self._ended:
            return
        received_s = sum(audio.duration_s for audio in self.first)
        while True:
            try:
                async with asyncio.timeout(gap_s):
                    data = await anext(self._chunks, None)
            except (TimeoutError, httpx2.TimeoutException) as e:
                raise ProviderTimeout("tts", "The tts service stopped sending audio.") from e
            except httpx2.HTTPError as e:
                _report_cut(_cut_reason(e), received_s, on_cut)
                break
            if data is None:
                if self._decoder.short:
                    _report_cut("short", received_s, on_cut)
                break
            for audio in self._decoder.feed(data):
                received_s += audio.duration_s
                yield audio
        for audio in self._decoder.finish():
            yield audio

    async def aclose(self) -> None:
        """Closes the response (which stops the upstream's work on it)."""
        await self._stack.aclose()


def _report_cut(reason: str, received_s: float, on_cut: CutHook | None) -> None:
    logger.warning(
        "speech body cut short",
        extra={"stage": "tts", "reason": reason, "received_s": round(received_s, 3)},
    )
    if on_cut is not None:
        on_cut("tts", reason)


def _cut_reason(error: httpx2.HTTPError) -> str:
    if isinstance(error, httpx2.RemoteProtocolError):
        return "closed"  # the peer closed the connection before the end of the body
    if isinstance(error, httpx2.NetworkError):
        return "network"
    if isinstance(error, httpx2.DecodingError):
        return "decoding"
    return "error"
