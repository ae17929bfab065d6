"""Ogg pages for an Opus stream (RFC 3533, RFC 7845), written here rather than by FFmpeg's muxer:
FFmpeg holds packets back until a page is full or a second long, while a streamed answer needs
every packet on the wire as soon as it is encoded. Pure and synchronous."""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

# Opus granule positions always count 48 kHz samples, whatever the input rate was.
OPUS_GRANULE_RATE = 48_000
_MAX_SEGMENTS = 255
_VENDOR = b"voice-orchestrator"


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
        table.append(crc)
    return tuple(table)


_CRC = _crc_table()


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial value 0."""
    crc = 0
    table = _CRC
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


def _lacing(size: int) -> bytes:
    return b"\xff" * (size // 255) + bytes([size % 255])


class OggOpusWriter:
    """Turns Opus packets into Ogg pages of one logical stream.

    ``headers()`` gives the two header pages; ``pages()`` puts the packets it is given on as few
    pages as fit (never holding one back), each page's granule position being that of its last
    packet.
    """

    def __init__(self, opus_head: bytes, *, serial: int | None = None) -> None:
        if opus_head[:8] != b"OpusHead":
            raise ValueError("not an OpusHead header")
        self.pre_skip: int = struct.unpack_from("<H", opus_head, 10)[0]
        self._head = opus_head
        self._serial = int.from_bytes(os.urandom(4), "little") if serial is None else serial
        self._sequence = 0

    def headers(self) -> bytes:
        tags = b"OpusTags" + struct.pack("<I", len(_VENDOR)) + _VENDOR + struct.pack("<I", 0)
        return self._page([self._head], 0, bos=True) + self._page([tags], 0)

    def pages(self, packets: Sequence[tuple[bytes, int]], *, last: bool = False) -> bytes:
        """Pages holding ``packets``, each given with the granule position at its end; ``last``
        marks the final page (end of stream). A last call without packets writes an empty
        end-of-stream page."""
        out: list[bytes] = []
        start = 0
        while start < len(packets) or (last and not out):
            end, segments = start, 0
            while end < len(packets):
                needed = len(packets[end][0]) // 255 + 1
                if segments + needed > _MAX_SEGMENTS:
                    break
                segments += needed
                end += 1
            batch = packets[start:end]
            granule = batch[-1][1] if batch else -1
            eos = last and end == len(packets)
            out.append(self._page([p for p, _ in batch], granule, eos=eos))
            start = end
        return b"".join(out)

    def _page(
        self, packets: Sequence[bytes], granule: int, *, bos: bool = False, eos: bool = False
    ) -> bytes:
        lacing = b"".join(_lacing(len(p)) for p in packets)
        flags = (0x02 if bos else 0) | (0x04 if eos else 0)
        header = struct.pack(
            "<4sBBqIIIB", b"OggS", 0, flags, granule, self._serial, self._sequence, 0, len(lacing)
        )
        page = bytearray(header + lacing + b"".join(packets))
        struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
        self._sequence += 1
        return bytes(page)
