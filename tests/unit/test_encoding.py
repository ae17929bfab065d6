"""Answer formats: every format decodes (with PyAV) back to the speech that went in, at its
duration and where it went in; streamed pages and frames are usable as they arrive; the Accept
and response_format negotiation table."""

from __future__ import annotations

import io
import itertools
import struct

import av
import numpy as np
import numpy.typing as npt
import pytest

from voice_orchestrator.audio import Audio, encode_wav, parse_wav, resample
from voice_orchestrator.encoders import AAC_PRIMING
from voice_orchestrator.encoding import (
    OutputFormat,
    StreamEncoder,
    encode_whole,
    negotiate,
    output_rate,
)
from voice_orchestrator.errors import InvalidRequest
from voice_orchestrator.ogg import ogg_crc

from ..conftest import REPO, SPEECH

QUESTION = REPO / "tests" / "assets" / "question.wav"
DEMUXERS = {"opus": "ogg", "mp3": "mp3", "aac": "aac", "flac": "flac", "wav": "wav"}
LOSSY = (OutputFormat.OPUS, OutputFormat.MP3, OutputFormat.AAC)
F = OutputFormat


def load(path: object) -> Audio:
    with open(str(path), "rb") as f:
        return parse_wav(f.read())


@pytest.fixture(scope="module")
def question() -> Audio:
    """Speech at a TTS engine's rate (22.05 kHz), 2.3 s."""
    return load(QUESTION)


@pytest.fixture(scope="module")
def ten_seconds(question: Audio) -> Audio:
    """About ten seconds of speech at 22.05 kHz."""
    if not SPEECH.is_dir():
        pytest.skip("../shared/data/speech is absent")
    clip = load(SPEECH / "21_ljspeech_LJ001-0007_22k.wav")
    return Audio.concatenate([clip, question], question.sample_rate)


def decode(data: bytes, fmt: OutputFormat, rate: int) -> tuple[npt.NDArray[np.float32], int]:
    """Decoded mono float samples and their rate (raw PCM is at ``rate``)."""
    if fmt is F.PCM:
        return Audio(data, rate).to_float32(), rate
    parts = []
    with av.open(io.BytesIO(data), format=DEMUXERS[fmt.value]) as container:
        out_rate = container.streams.audio[0].rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=out_rate)
        for frame in container.decode(audio=0):
            parts.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return samples.astype(np.float32), out_rate


def codec_frame_s(fmt: OutputFormat, rate: int) -> float:
    frames = {F.OPUS: 960 / 48_000 * rate, F.MP3: 1152 if rate >= 32_000 else 576, F.AAC: 1024}
    return frames.get(fmt, 0) / rate


def stream(audio: Audio, fmt: OutputFormat, piece_s: float = 0.7) -> tuple[bytes, StreamEncoder]:
    encoder = StreamEncoder(fmt, audio.sample_rate)
    step = int(piece_s * audio.sample_rate) * 2
    parts = [encoder.encode(Audio(audio.pcm[i : i + step], audio.sample_rate))
             for i in range(0, len(audio.pcm), step)]  # fmt: skip
    return b"".join([*parts, encoder.finish()]), encoder


def check_speech(audio: Audio, data: bytes, fmt: OutputFormat, encoded_rate: int) -> None:
    """The decoded speech lasts as long as the input (within one codec frame) and lines up with
    it sample for sample."""
    decoded, rate = decode(data, fmt, encoded_rate)
    # Opus always decodes at 48 kHz; the others at the rate they were encoded at.
    assert rate == (48_000 if fmt is F.OPUS else output_rate(fmt, audio.sample_rate))
    if fmt is F.AAC:
        # ADTS has no field for the encoder's priming: decoders play it as leading silence.
        assert np.abs(decoded[:AAC_PRIMING]).max() < 0.01
        decoded = decoded[AAC_PRIMING:]
    tolerance = codec_frame_s(fmt, rate)
    assert abs(decoded.shape[0] / rate - audio.duration_s) <= tolerance + 1e-9
    assert decoded.shape[0] / rate >= audio.duration_s - 1e-9 or fmt is F.OPUS
    reference = resample(audio, rate).to_float32()
    n = min(reference.shape[0], decoded.shape[0])
    if fmt in LOSSY:
        assert np.corrcoef(reference[:n], decoded[:n])[0, 1] > 0.9
    else:
        assert np.abs(reference[:n] - decoded[:n]).max() < 1e-4


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_whole_answer_decodes_to_the_input(question: Audio, fmt: OutputFormat) -> None:
    check_speech(question, encode_whole(question, fmt), fmt, output_rate(fmt, 22_050))


@pytest.mark.parametrize("fmt", list(OutputFormat))
@pytest.mark.parametrize("rate", [16_000, 22_050, 44_100])
def test_streamed_answer_decodes_to_the_input(
    question: Audio, fmt: OutputFormat, rate: int
) -> None:
    audio = resample(question, rate)
    data, encoder = stream(audio, fmt)
    assert encoder.sample_rate == output_rate(fmt, rate)
    check_speech(audio, data, fmt, encoder.sample_rate)


def test_streamed_opus_pages_are_playable_as_they_arrive(ten_seconds: Audio) -> None:
    encoder = StreamEncoder(F.OPUS, ten_seconds.sample_rate)
    rate, received, fed = ten_seconds.sample_rate, b"", 0.0
    # One piece per "sentence", as the synthesizer hands them over.
    bounds = [0.0, 1.3, 3.1, 4.0, 6.2, 8.5, ten_seconds.duration_s]
    for start, end in itertools.pairwise(bounds):
        piece = ten_seconds.pcm[2 * int(start * rate) : 2 * int(end * rate)]
        out = encoder.encode(Audio(piece, rate))
        fed = end
        assert out, "every sentence yields pages at once"
        assert b"".join(pages(out)) == out, "only whole pages are handed over"
        received += out
        decoded, out_rate = decode(received, F.OPUS, rate)
        # All but the resampler's and codec's lookahead and a partial frame is playable.
        assert decoded.shape[0] / out_rate >= fed - 0.1
    rest = encoder.finish()
    assert b"".join(pages(rest)) == rest
    flags = [page[5] for page in pages(received + rest)]
    assert flags[0] == 0x02, "the first page begins the stream"
    assert flags[-1] == 0x04, "the last page ends it"
    assert set(flags[1:-1]) == {0}
    check_speech(ten_seconds, received + rest, F.OPUS, encoder.sample_rate)


def pages(data: bytes) -> list[bytes]:
    """The consecutive Ogg pages at the start of ``data``."""
    out, pos = [], 0
    while data[pos : pos + 4] == b"OggS":
        segments = data[pos + 26]
        end = pos + 27 + segments + sum(data[pos + 27 : pos + 27 + segments])
        out.append(data[pos:end])
        pos = end
    return out


@pytest.mark.parametrize("fmt", [F.MP3, F.AAC, F.FLAC])
def test_streamed_frames_come_before_the_end(question: Audio, fmt: OutputFormat) -> None:
    encoder = StreamEncoder(fmt, question.sample_rate)
    first = encoder.encode(Audio(question.pcm[: question.sample_rate * 2], question.sample_rate))
    decoded, _ = decode(first, fmt, encoder.sample_rate)
    assert decoded.shape[0] > question.sample_rate // 2


def test_compressed_sizes_of_ten_seconds_of_speech(ten_seconds: Audio) -> None:
    wav = len(encode_wav(ten_seconds))
    sizes = {fmt: len(stream(ten_seconds, fmt)[0]) for fmt in OutputFormat}
    assert sizes[F.OPUS] < wav / 8  # 24 kbit/s against 353 kbit/s
    assert sizes[F.MP3] < wav / 5  # 48 kbit/s
    assert sizes[F.AAC] < wav / 5  # 48 kbit/s
    assert sizes[F.FLAC] < wav * 0.8
    assert sizes[F.WAV] == wav
    assert sizes[F.PCM] == wav - 44


def test_headers_name_the_format_and_rate() -> None:
    assert StreamEncoder(F.OPUS, 22_050).headers() == {
        "Content-Type": "audio/ogg",
        "X-Output-Format": "opus",
        "X-Output-Sample-Rate": "24000",
    }
    types = {fmt: StreamEncoder(fmt, 16_000).headers()["Content-Type"] for fmt in OutputFormat}
    assert types == {F.OPUS: "audio/ogg", F.MP3: "audio/mpeg", F.AAC: "audio/aac",
                     F.FLAC: "audio/flac", F.WAV: "audio/wav", F.PCM: "audio/pcm"}  # fmt: skip


def test_wav_stream_has_streaming_sizes(question: Audio) -> None:
    data, _ = stream(question, F.WAV)
    assert struct.unpack_from("<I", data, 40)[0] == 0xFFFFFFFF
    assert data[44:] == question.pcm


def test_encoder_refuses_another_rate_and_use_after_finish() -> None:
    encoder = StreamEncoder(F.MP3, 16_000)
    with pytest.raises(ValueError, match="22050"):
        encoder.encode(Audio(b"\0\0" * 100, 22_050))
    encoder.finish()
    assert encoder.finish() == b""
    with pytest.raises(RuntimeError):
        encoder.encode(Audio(b"\0\0" * 100, 16_000))


@pytest.mark.parametrize(
    ("accept", "explicit", "expected"),
    [
        (None, None, F.WAV),
        ("", None, F.WAV),
        ("*/*", None, F.WAV),
        ("audio/*", None, F.WAV),
        ("audio/ogg", None, F.OPUS),
        ("audio/opus", None, F.OPUS),
        ("audio/ogg; codecs=opus", None, F.OPUS),
        ("audio/mpeg", None, F.MP3),
        ("audio/aac", None, F.AAC),
        ("audio/mp4", None, F.AAC),
        ("audio/flac", None, F.FLAC),
        ("audio/wav", None, F.WAV),
        ("audio/pcm", None, F.PCM),
        ("AUDIO/MPEG", None, F.MP3),
        ("audio/mpeg;q=0.5, audio/ogg;q=0.9", None, F.OPUS),
        ("audio/ogg;q=0.4, audio/mpeg", None, F.MP3),
        ("audio/aac, audio/mpeg", None, F.AAC),  # equal quality: the order given
        ("*/*, audio/ogg", None, F.OPUS),  # a named type before a wildcard
        ("audio/*;q=0.9, audio/mpeg;q=0.5", None, F.WAV),
        ("audio/wav;q=0, */*", None, F.OPUS),  # q=0 excludes, the wildcard takes the next
        ("audio/ogg;q=0", None, F.WAV),  # nothing acceptable
        ("text/html", None, F.WAV),
        ("application/json", None, F.WAV),
        ("audio/ogg;q=abc, audio/mpeg", None, F.MP3),  # a malformed quality is skipped
        ("audio/ogg", "mp3", F.MP3),  # the explicit format wins
        (None, "opus", F.OPUS),
        (None, " FLAC ", F.FLAC),
        (None, "pcm", F.PCM),
        (None, "aac", F.AAC),
        (None, "wav", F.WAV),
    ],
)
def test_negotiation(accept: str | None, explicit: str | None, expected: OutputFormat) -> None:
    assert negotiate(accept, explicit) is expected


@pytest.mark.parametrize("explicit", ["ogg", "vorbis", "", "m4a"])
def test_unknown_explicit_format_lists_the_supported_ones(explicit: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        negotiate("audio/ogg", explicit)
    assert "opus, mp3, aac, flac, wav, pcm" in raised.value.message
    assert raised.value.code == "INVALID_REQUEST"


def test_ogg_checksum_agrees_with_ffmpegs_muxer() -> None:
    file = io.BytesIO()
    with av.open(file, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=24_000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 4800), dtype=np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 24_000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    for page in pages(file.getvalue()):
        blank = page[:22] + b"\0\0\0\0" + page[26:]
        assert ogg_crc(blank) == struct.unpack_from("<I", page, 22)[0]


def test_bench_figure_is_well_formed() -> None:
    from bench.encoding import encoding

    figure = encoding(1)
    assert set(figure["cpu_s_per_speech_s"]) == {f.value for f in OutputFormat}
    sizes = figure["bytes_per_speech_s"]
    assert sizes["opus"] < sizes["mp3"] < sizes["flac"] < sizes["wav"]


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_an_empty_answer_is_still_a_playable_file(fmt: OutputFormat) -> None:
    for data in (encode_whole(Audio(b"", 22_050), fmt), StreamEncoder(fmt, 22_050).finish()):
        decoded, rate = decode(data, fmt, 22_050)
        priming = AAC_PRIMING if fmt is F.AAC else 0
        assert decoded.shape[0] <= priming + 2 * codec_frame_s(fmt, rate) * rate
        assert np.abs(decoded).max(initial=0.0) < 0.01


async def test_the_streamed_formats_figure_is_well_formed() -> None:
    from bench import encoding as bench_encoding

    figure = await bench_encoding.streamed_first_audio(1)
    for fmt in ("opus", "mp3", "aac"):
        assert figure[f"{fmt}_first_over_ms"] > -figure["limit_ms"]
        assert 0 < figure[f"{fmt}_bytes"] < figure["wav_bytes"]
