"""Decoding, validation, resampling and encoding of audio."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from voice_orchestrator.audio import (
    STREAMING_SIZE,
    Audio,
    decode,
    encode_wav,
    parse_wav,
    resample,
    wav_header,
)
from voice_orchestrator.errors import AudioTooLong, AudioTooShort, InvalidAudio

from ..fakes import make_wav, tone

LIMITS = {"min_s": 0.5, "max_s": 60.0}


@pytest.mark.parametrize(
    ("subtype", "fmt"),
    [
        ("PCM_U8", "WAV"),
        ("PCM_16", "WAV"),
        ("PCM_24", "WAV"),
        ("PCM_32", "WAV"),
        ("FLOAT", "WAV"),
        ("DOUBLE", "WAV"),
        ("PCM_16", "WAVEX"),
        ("PCM_24", "WAVEX"),
        ("PCM_16", "FLAC"),
        ("VORBIS", "OGG"),
    ],
)
@pytest.mark.parametrize(("rate", "channels"), [(8_000, 1), (16_000, 2), (44_100, 2), (48_000, 6)])
def test_decodes_every_format(subtype: str, fmt: str, rate: int, channels: int) -> None:
    data = make_wav(1.25, rate, channels=channels, subtype=subtype, fmt=fmt)
    decoded = decode(data, target_rate=16_000, **LIMITS)
    assert decoded.source_sample_rate == rate
    assert decoded.channels == channels
    assert decoded.duration_s == pytest.approx(1.25, abs=0.01)
    assert decoded.audio.sample_rate == 16_000
    assert decoded.audio.duration_s == pytest.approx(1.25, abs=0.01)
    # The 440 Hz tone survives downmix and resampling.
    samples = decoded.audio.to_float32()
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * 16_000 / len(samples)
    assert peak_hz == pytest.approx(440, abs=5)
    assert 0.2 < np.max(np.abs(samples)) < 0.35


def test_keeps_the_rate_when_no_target() -> None:
    decoded = decode(make_wav(1.0, 22_050), target_rate=None, **LIMITS)
    assert decoded.audio.sample_rate == 22_050


def test_16_bit_mono_at_the_target_rate_passes_through_unchanged() -> None:
    full_scale = np.random.default_rng(1).integers(-32768, 32768, 16_000, dtype=np.int16)
    audio = Audio(full_scale.astype("<i2").tobytes(), 16_000)
    decoded = decode(encode_wav(audio), target_rate=16_000, **LIMITS)
    # Lossless: no float round trip that would scale or re-round the samples.
    assert decoded.audio == audio
    assert (decoded.source_sample_rate, decoded.channels, decoded.format) == (16_000, 1, "WAV")
    assert decoded.duration_s == pytest.approx(1.0)
    # A streaming writer's header (sizes unknown) reads to the end of the body.
    assert decode(wav_header(16_000) + audio.pcm, target_rate=16_000, **LIMITS).audio == audio


def test_16_bit_wav_matches_libsndfile_when_resampled_or_downmixed() -> None:
    for rate, channels in [(44_100, 1), (16_000, 2), (48_000, 6)]:
        data = make_wav(1.0, rate, channels=channels)
        fast = decode(data, target_rate=16_000, **LIMITS)
        # The same audio in a container only libsndfile reads.
        flac = decode(make_wav(1.0, rate, channels=channels, fmt="FLAC"), target_rate=16_000,
                      **LIMITS)  # fmt: skip
        assert (fast.source_sample_rate, fast.channels) == (rate, channels)
        assert fast.audio.frames == flac.audio.frames
        diff = np.abs(fast.audio.to_float32() - flac.audio.to_float32())
        assert diff.max() < 2e-4


def test_16_bit_wav_with_extra_chunks_and_odd_tail() -> None:
    audio = tone(0.6, 16_000)
    fmt = wav_header(16_000, len(audio.pcm))[12:36]
    odd = audio.pcm + b"\x01"  # a byte short of a frame
    data = (b"RIFF" + struct.pack("<I", 0) + b"WAVE" + b"LIST" + struct.pack("<I", 3) + b"abc\x00"
            + fmt + b"data" + struct.pack("<I", len(odd)) + odd)  # fmt: skip
    assert decode(data, target_rate=16_000, **LIMITS).audio == audio


def test_downmix_averages_channels() -> None:
    buffer = io.BytesIO()
    left = np.full(16_000, 0.5)
    right = np.zeros(16_000)
    sf.write(buffer, np.stack([left, right], axis=1), 16_000, subtype="PCM_16", format="WAV")
    decoded = decode(buffer.getvalue(), target_rate=16_000, **LIMITS)
    assert np.allclose(decoded.audio.to_float32(), 0.25, atol=1e-3)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not audio at all",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",
        make_wav(1.0)[:30],
        b"RIFF" + b"\xff" * 40,
        b"\x00" * 1000,
    ],
)
def test_rejects_undecodable(data: bytes) -> None:
    with pytest.raises(InvalidAudio):
        decode(data, target_rate=16_000, **LIMITS)


def test_rejects_zero_frames() -> None:
    with pytest.raises(InvalidAudio):
        decode(wav_header(16_000, 0), target_rate=16_000, **LIMITS)


def test_rejects_zero_channels() -> None:
    data = bytearray(make_wav(1.0))
    struct.pack_into("<H", data, 22, 0)
    with pytest.raises(InvalidAudio):
        decode(bytes(data), target_rate=16_000, **LIMITS)


def test_rejects_absurd_rate() -> None:
    data = bytearray(make_wav(1.0))
    struct.pack_into("<I", data, 24, 1)
    with pytest.raises(InvalidAudio):
        decode(bytes(data), target_rate=16_000, **LIMITS)


def test_huge_declared_size_is_read_as_what_is_there() -> None:
    data = bytearray(make_wav(1.0))
    struct.pack_into("<I", data, 40, 0x7FFFFFF0)
    decoded = decode(bytes(data), target_rate=16_000, **LIMITS)
    assert decoded.duration_s == pytest.approx(1.0, abs=0.01)


def test_duration_limits() -> None:
    with pytest.raises(AudioTooShort):
        decode(make_wav(0.4), target_rate=16_000, **LIMITS)
    with pytest.raises(AudioTooLong):
        decode(make_wav(2.5), target_rate=16_000, min_s=0.5, max_s=2.0)
    decoded = decode(make_wav(0.5), target_rate=16_000, **LIMITS)
    assert decoded.duration_s == pytest.approx(0.5)


def test_encode_wav_round_trip() -> None:
    audio = tone(0.3, 24_000)
    data = encode_wav(audio)
    info = sf.info(io.BytesIO(data))
    assert (info.samplerate, info.channels, info.subtype) == (24_000, 1, "PCM_16")
    samples, _ = sf.read(io.BytesIO(data), dtype="int16")
    assert samples.tobytes() == audio.pcm


def test_parse_wav_reads_the_real_rate_and_streaming_sizes() -> None:
    audio = tone(0.2, 24_000)
    assert parse_wav(encode_wav(audio)) == audio
    streamed = wav_header(24_000) + audio.pcm
    assert streamed[4:8] == struct.pack("<I", STREAMING_SIZE)
    assert parse_wav(streamed) == audio
    flac = make_wav(0.2, 32_000, fmt="FLAC")
    assert parse_wav(flac).sample_rate == 32_000
    with pytest.raises(ValueError, match="not decodable"):
        parse_wav(b"garbage that is not audio")


def test_parse_wav_downmixes_stereo() -> None:
    stereo = make_wav(0.2, 16_000, channels=2)
    parsed = parse_wav(stereo)
    assert parsed.sample_rate == 16_000
    assert parsed.duration_s == pytest.approx(0.2, abs=1e-3)


def test_resample_and_concatenate() -> None:
    audio = tone(0.5, 22_050)
    assert resample(audio, 22_050) is audio
    up = resample(audio, 44_100)
    assert up.duration_s == pytest.approx(0.5, abs=1e-3)
    joined = Audio.concatenate([audio, audio], 22_050)
    assert joined.duration_s == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="different sample rates"):
        Audio.concatenate([audio, up], 22_050)
