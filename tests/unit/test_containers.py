"""Compressed formats browsers and phones send, decoded with PyAV; bounded against bombs."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest
import soundfile as sf

from voice_orchestrator.audio import decode
from voice_orchestrator.containers import decode_container, demuxer_for
from voice_orchestrator.errors import AudioTooLong, InvalidAudio

from ..conftest import SPEECH, AppClient
from ..fakes import make_wav

LIMITS = {"min_s": 0.5, "max_s": 60.0}
FORMATS = [
    ("webm", "libopus", 48_000, "audio/webm"),
    ("ogg", "libopus", 48_000, "audio/ogg"),
    ("mp4", "aac", 44_100, "audio/mp4"),
    ("mp3", "libmp3lame", 44_100, "audio/mpeg"),
]


def encode(samples: np.ndarray, rate: int, fmt: str, codec: str, out_rate: int) -> bytes:
    """Encodes mono float samples into a container, as a browser or phone would send it."""
    if rate != out_rate:
        import soxr

        samples = soxr.resample(samples, rate, out_rate)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=out_rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            samples.astype(np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = out_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def tone_samples(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.3 * np.sin(2 * np.pi * 440 * t)


@pytest.mark.parametrize(("fmt", "codec", "rate", "_media"), FORMATS)
def test_container_decodes_to_the_same_duration(
    fmt: str, codec: str, rate: int, _media: str
) -> None:
    clip = SPEECH / "01_jfk_16k.wav"
    if clip.exists():
        samples, source_rate = sf.read(clip, dtype="float32")
    else:
        samples, source_rate = tone_samples(3.0, 16_000), 16_000
    expected = len(samples) / source_rate
    data = encode(samples, source_rate, fmt, codec, rate)
    decoded = decode(data, target_rate=16_000, **LIMITS)
    # Within one codec frame (AAC 1024, MP3 1152, Opus 960 samples) plus encoder padding.
    assert decoded.duration_s == pytest.approx(expected, abs=1200 / rate + 0.03)
    assert decoded.source_sample_rate == rate
    assert decoded.channels == 1
    assert decoded.audio.sample_rate == 16_000


def test_demuxer_is_chosen_by_magic_bytes() -> None:
    assert demuxer_for(b"\x1a\x45\xdf\xa3rest") == "matroska"
    assert demuxer_for(b"\x00\x00\x00\x1cftypisom") == "mp4"
    assert demuxer_for(b"OggS\x00") == "ogg"
    assert demuxer_for(b"ID3\x04") == "mp3"
    assert demuxer_for(make_wav(0.1)) is None


@pytest.mark.parametrize(("fmt", "codec", "rate", "_media"), FORMATS)
def test_truncated_containers_are_refused_or_shorter(
    fmt: str, codec: str, rate: int, _media: str
) -> None:
    data = encode(tone_samples(2.0, rate), rate, fmt, codec, rate)
    for cut in (16, 100, len(data) // 2):
        try:
            decoded = decode(data[:cut], target_rate=16_000, min_s=0.0, max_s=60.0)
        except InvalidAudio:
            continue
        assert decoded.duration_s < 2.1


def test_declared_hours_in_a_tiny_file_is_refused() -> None:
    data = encode(tone_samples(1.0, 48_000), 48_000, "webm", "libopus", 48_000)
    # Matroska Duration element (0x4489) as a float64: claim ten hours.
    marker = data.find(b"\x44\x89")
    assert marker > 0
    size = data[marker + 2] & 0x7F
    forged = bytearray(data)
    if size == 8:
        struct.pack_into(">d", forged, marker + 3, 36_000_000.0)
    else:
        struct.pack_into(">f", forged, marker + 3, 36_000_000.0)
    with pytest.raises(InvalidAudio, match="claims a duration"):
        decode(bytes(forged), target_rate=16_000, **LIMITS)


def test_long_audio_stops_decoding_at_the_limit() -> None:
    data = encode(tone_samples(5.0, 48_000), 48_000, "webm", "libopus", 48_000)
    with pytest.raises(AudioTooLong):
        decode_container(data, "matroska", max_s=2.0)


def test_inflation_beyond_any_codec_is_a_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(tone_samples(2.0, 48_000), 48_000, "webm", "libopus", 48_000)
    import voice_orchestrator.containers as containers

    monkeypatch.setattr(containers, "MAX_INFLATION", 1)
    with pytest.raises(InvalidAudio, match="inflates"):
        decode_container(data, "matroska", max_s=60.0)


@pytest.mark.parametrize(("fmt", "codec", "rate", "media"), FORMATS)
async def test_endpoint_accepts_each_format(
    app_client: AppClient, fmt: str, codec: str, rate: int, media: str
) -> None:
    data = encode(tone_samples(1.5, rate), rate, fmt, codec, rate)
    async with app_client() as client:
        raw = await client.post(
            "/api/orchestrator/dialogue", content=data, headers={"content-type": media}
        )
        multipart = await client.post(
            "/api/orchestrator/dialogue", files={"audio": (f"q.{fmt}", data, media)}
        )
    for response in (raw, multipart):
        assert response.status_code == 200, response.text
        assert response.headers["x-input-sample-rate"] == str(rate)
        assert float(response.headers["x-input-duration"]) == pytest.approx(1.5, abs=0.06)


async def test_mislabelled_body_is_invalid(app_client: AppClient) -> None:
    async with app_client() as client:
        response = await client.post(
            "/api/orchestrator/dialogue",
            content=b"\x1a\x45\xdf\xa3" + b"\x00" * 200,
            headers={"content-type": "audio/webm"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_AUDIO_FORMAT"
