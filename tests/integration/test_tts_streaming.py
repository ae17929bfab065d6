"""The OpenAI speech adapter on bodies that arrive in pieces (through pytest-httpx2): audio is
handed on while the body is still coming, whatever the read boundaries, and a body cut off
ends the sentence with what arrived."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import numpy as np
import pytest
import respx
import soundfile as sf

from voice_orchestrator.audio import Audio, wav_header
from voice_orchestrator.errors import ProviderError
from voice_orchestrator.metrics import Metrics
from voice_orchestrator.providers.openai import OpenAITextToSpeech, create_client
from voice_orchestrator.providers.tts_stream import MIN_PIECE_MS, PIECE_MS
from voice_orchestrator.settings import TTSSettings

from ..conftest import HANG_S
from ..fakes import tone

BASE = "http://upstream.test/v1"
SPEECH = BASE + "/audio/speech"
TEXT = "A sentence nobody may log."


def tts(metrics: Metrics | None = None, **kw: Any) -> OpenAITextToSpeech:
    settings = TTSSettings(provider="openai", base_url=BASE, api_key="sk-test", **kw)
    on_cut = metrics.count_cut if metrics is not None else None
    return OpenAITextToSpeech(create_client(settings), settings, on_cut=on_cut)


def body(*parts: bytes, error: Exception | None = None) -> httpx.Response:
    """A 200 whose body arrives as ``parts`` (one read each), then ends or fails with
    ``error``."""

    async def stream() -> AsyncIterator[bytes]:
        for part in parts:
            yield part
        if error is not None:
            raise error

    return httpx.Response(200, content=stream())


def split(data: bytes, *cuts: int) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


async def synthesize(adapter: OpenAITextToSpeech) -> list[Audio]:
    async with asyncio.timeout(HANG_S):
        return [audio async for audio in adapter.synthesize(TEXT)]


def joined(chunks: list[Audio]) -> Audio:
    assert chunks
    return Audio.concatenate(chunks, chunks[0].sample_rate)


def zero_sizes(header: bytes) -> bytes:
    """The header with RIFF and data sizes 0, as some streaming writers send it."""
    return header[:4] + b"\0\0\0\0" + header[8:40] + b"\0\0\0\0"


@pytest.mark.parametrize("sizes", ["unknown", "zero"])
@pytest.mark.parametrize("cuts", [(1, 7, 13, 30, 43), (20,), (44,), (45,), (50, 1001)])
async def test_wav_header_split_across_reads(
    httpx2_mock: respx.Router, sizes: str, cuts: tuple[int, ...]
) -> None:
    audio = tone(0.25, 24_000)
    header = wav_header(24_000) if sizes == "unknown" else zero_sizes(wav_header(24_000))
    route = httpx2_mock.post(SPEECH).mock(return_value=body(*split(header + audio.pcm, *cuts)))
    chunks = await synthesize(tts())
    assert joined(chunks) == audio
    assert route.call_count == 1


async def test_wav_with_extra_chunks_and_a_declared_size(httpx2_mock: respx.Router) -> None:
    audio = tone(0.2, 16_000)
    listing = b"LIST" + struct.pack("<I", 10) + b"INFOxxxxyy"
    header = wav_header(16_000, len(audio.pcm))
    wav = header[:36] + listing + header[36:] + audio.pcm + b"LIST" + struct.pack("<I", 2) + b"zz"
    httpx2_mock.post(SPEECH).mock(return_value=body(*split(wav, 30, 50, 61)))
    # What follows the declared data (a trailing chunk) is not audio.
    assert joined(await synthesize(tts())) == audio


@pytest.mark.parametrize("response_format", ["pcm", "wav"])
async def test_odd_byte_split_is_kept_for_the_next_chunk(
    httpx2_mock: respx.Router, response_format: str
) -> None:
    audio = tone(0.3, 16_000)
    data = audio.pcm if response_format == "pcm" else wav_header(16_000) + audio.pcm
    odd = list(range(101, len(data), 997))  # every read ends in the middle of a sample
    httpx2_mock.post(SPEECH).mock(return_value=body(*split(data, *odd)))
    adapter = tts(response_format=response_format, pcm_sample_rate=16_000)
    chunks = await synthesize(adapter)
    assert all(len(chunk.pcm) % 2 == 0 for chunk in chunks)
    assert joined(chunks) == audio


async def test_pieces_are_short_and_small_reads_are_gathered(httpx2_mock: respx.Router) -> None:
    rate = 24_000
    audio = tone(1.0, rate)
    ms = rate // 1000 * 2  # bytes a millisecond
    # One read of 500 ms, then reads of 5 ms each.
    parts = [audio.pcm[: 500 * ms], *split(audio.pcm[500 * ms :], *range(5 * ms, 500 * ms, 5 * ms))]
    httpx2_mock.post(SPEECH).mock(return_value=body(*parts))
    chunks = await synthesize(tts(response_format="pcm", pcm_sample_rate=rate))
    assert joined(chunks) == audio
    lengths = [len(chunk.pcm) // ms for chunk in chunks]
    assert max(lengths) <= PIECE_MS
    assert min(lengths[:-1]) >= MIN_PIECE_MS  # only the very last piece may be shorter


async def test_first_audio_is_handed_on_before_the_body_ends(httpx2_mock: respx.Router) -> None:
    audio = tone(1.0, 24_000)
    release = asyncio.Event()

    async def stream() -> AsyncIterator[bytes]:
        yield wav_header(24_000) + audio.pcm[:4800]
        # The rest comes only once the test has seen the first audio.
        await release.wait()
        yield audio.pcm[4800:]

    httpx2_mock.post(SPEECH).mock(return_value=httpx.Response(200, content=stream()))
    speech = tts().synthesize(TEXT)
    async with asyncio.timeout(HANG_S):
        first = await anext(speech)
        assert not release.is_set()
        release.set()
        rest = [chunk async for chunk in speech]
    assert joined([first, *rest]) == audio


async def test_a_cut_body_ends_the_sentence_with_what_arrived(
    httpx2_mock: respx.Router, caplog: pytest.LogCaptureFixture
) -> None:
    audio = tone(0.5, 24_000)
    wav = wav_header(24_000) + audio.pcm
    cut = 44 + 2 * 3001 + 1  # in the middle of a sample
    route = httpx2_mock.post(SPEECH).mock(
        return_value=body(
            wav[:2000], wav[2000:cut], error=httpx2.RemoteProtocolError("peer closed")
        )
    )
    metrics = Metrics()
    with caplog.at_level(logging.DEBUG):
        chunks = await synthesize(tts(metrics, max_retries=2))
    assert joined(chunks).pcm == audio.pcm[: 2 * 3001]
    assert route.call_count == 1  # audio had been handed on: a retry would repeat it
    assert b'upstream_stream_cuts_total{reason="closed",stage="tts"} 1.0' in metrics.render()
    cuts = [r for r in caplog.records if r.getMessage() == "speech body cut short"]
    assert len(cuts) == 1
    assert cuts[0].levelno == logging.WARNING
    assert TEXT not in caplog.text


async def test_a_body_shorter_than_its_header_declares_is_counted(
    httpx2_mock: respx.Router,
) -> None:
    audio = tone(0.5, 24_000)
    wav = wav_header(24_000, len(audio.pcm)) + audio.pcm[:4000]
    httpx2_mock.post(SPEECH).mock(return_value=body(wav))
    metrics = Metrics()
    assert joined(await synthesize(tts(metrics))).pcm == audio.pcm[:4000]
    assert b'upstream_stream_cuts_total{reason="short",stage="tts"} 1.0' in metrics.render()


async def test_a_cut_before_any_audio_is_retried(httpx2_mock: respx.Router) -> None:
    audio = tone(0.2, 24_000)
    route = httpx2_mock.post(SPEECH)
    route.side_effect = [
        body(wav_header(24_000)[:30], error=httpx2.RemoteProtocolError("peer closed")),
        body(wav_header(24_000) + audio.pcm),
    ]
    metrics = Metrics()
    assert joined(await synthesize(tts(metrics, max_retries=1))) == audio
    assert route.call_count == 2
    assert b"upstream_stream_cuts_total{" not in metrics.render()


async def test_the_timeout_bounds_each_gap_not_the_whole_body(httpx2_mock: respx.Router) -> None:
    audio = tone(1.2, 24_000)
    data = wav_header(24_000) + audio.pcm
    parts = split(data, *range(9644, len(data), 9600))  # 200 ms of audio a read

    async def stream() -> AsyncIterator[bytes]:
        for part in parts:
            await asyncio.sleep(0.25)  # the upstream's scripted pace, far within the timeout
            yield part

    httpx2_mock.post(SPEECH).mock(return_value=httpx.Response(200, content=stream()))
    # The whole body takes longer than the stage timeout; no gap comes near it.
    assert joined(await synthesize(tts(timeout_s=1.0))) == audio


@pytest.mark.parametrize("stall_after_first", [False, True])
async def test_a_stalled_body_is_a_timeout(
    httpx2_mock: respx.Router, stall_after_first: bool
) -> None:
    never = asyncio.Event()

    async def stream() -> AsyncIterator[bytes]:
        if stall_after_first:
            yield wav_header(24_000) + tone(0.1, 24_000).pcm
        await never.wait()
        yield b""

    httpx2_mock.post(SPEECH).mock(return_value=httpx.Response(200, content=stream()))
    got: list[Audio] = []
    with pytest.raises(ProviderError) as info:
        async with asyncio.timeout(HANG_S):
            async for chunk in tts(timeout_s=0.2).synthesize(TEXT):
                got.append(chunk)
    assert info.value.code == "TTS_TIMEOUT"
    assert bool(got) == stall_after_first


async def test_a_wav_that_is_not_16_bit_is_read_whole(httpx2_mock: respx.Router) -> None:
    samples = 0.25 * np.sin(np.linspace(0, 200, 4800)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, samples, 24_000, subtype="FLOAT", format="WAV")
    httpx2_mock.post(SPEECH).mock(return_value=body(*split(buffer.getvalue(), 10, 60, 1000)))
    chunks = await synthesize(tts())
    assert joined(chunks) == Audio.from_float32(samples, 24_000)


async def test_stereo_is_downmixed_while_streaming(httpx2_mock: respx.Router) -> None:
    left = tone(0.2, 16_000)
    frames = np.frombuffer(left.pcm, dtype="<i2")
    stereo = np.stack([frames, frames], axis=1).astype("<i2").tobytes()
    header = bytearray(wav_header(16_000))
    struct.pack_into("<HIIH", header, 22, 2, 16_000, 64_000, 4)
    httpx2_mock.post(SPEECH).mock(return_value=body(*split(bytes(header) + stereo, 47, 3003)))
    mono = np.frombuffer(joined(await synthesize(tts())).pcm, dtype="<i2")
    assert mono.shape == frames.shape
    assert np.abs(mono.astype(int) - frames.astype(int)).max() <= 1  # float rounding


@pytest.mark.parametrize("data", [b"", b"RIFF", b"definitely not audio", wav_header(24_000)[:40]])
async def test_no_usable_wav_is_a_service_error(httpx2_mock: respx.Router, data: bytes) -> None:
    route = httpx2_mock.post(SPEECH).mock(return_value=body(*split(data, 3)))
    with pytest.raises(ProviderError) as info:
        await synthesize(tts(max_retries=2))
    assert info.value.code == "TTS_SERVICE_ERROR"
    assert route.call_count == 1


class EndlessSpeech(httpx.AsyncByteStream):
    """A body that sends some audio and then nothing, and tells when it is closed."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self._never = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield wav_header(24_000) + tone(0.1, 24_000).pcm
        await self._never.wait()

    async def aclose(self) -> None:
        self.closed.set()


async def test_closing_the_speech_early_closes_the_response(httpx2_mock: respx.Router) -> None:
    body = EndlessSpeech()
    httpx2_mock.post(SPEECH).mock(return_value=httpx.Response(200, stream=body))
    speech = tts().synthesize(TEXT)
    async with asyncio.timeout(HANG_S):
        await anext(speech)
        await speech.aclose()  # a barge-in: the turn stops listening
        await body.closed.wait()
