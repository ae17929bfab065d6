"""Twilio Media Streams and ACS audio streaming messages: the documentation's samples parse, the
messages the service sends have the documented shapes, and the scripted clients agree."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from voice_orchestrator.g711 import ulaw_decode
from voice_orchestrator.telephony_messages import (
    AcsAudioData,
    AcsAudioMetadata,
    AcsDtmfData,
    TwilioConnected,
    TwilioDtmf,
    TwilioMark,
    TwilioMedia,
    TwilioStart,
    TwilioStop,
    acs_audio_message,
    acs_stop_audio_message,
    parse_acs_message,
    parse_twilio_message,
    twilio_clear_message,
    twilio_mark_message,
    twilio_media_message,
)

from ..conftest import speech_clip
from ..telephony_clients import (
    AcsCall,
    TwilioCall,
    acs_sent_audio,
    sent_audio,
    sent_marks,
    speech_mulaw_frames,
    speech_pcm,
)

MZ = "MZ" + "x" * 32
CA = "CA" + "x" * 32
AC = "AC" + "x" * 32
SILENCE_B64 = base64.b64encode(b"\xff" * 160).decode()

# The examples of https://www.twilio.com/docs/voice/media-streams/websocket-messages.
TWILIO_SAMPLES: dict[str, dict[str, Any]] = {
    "connected": {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    "start": {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": AC,
            "streamSid": MZ,
            "callSid": CA,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
        },
        "streamSid": MZ,
    },
    "media": {
        "event": "media",
        "sequenceNumber": "3",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": SILENCE_B64},
        "streamSid": MZ,
    },
    "mark": {"event": "mark", "sequenceNumber": "4", "streamSid": MZ, "mark": {"name": "my label"}},
    "dtmf": {
        "event": "dtmf",
        "streamSid": MZ,
        "sequenceNumber": "5",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    },
    "stop": {
        "event": "stop",
        "sequenceNumber": "5",
        "stop": {"accountSid": AC, "callSid": CA},
        "streamSid": MZ,
    },
}


def test_twilio_samples_parse() -> None:
    parsed = {k: parse_twilio_message(json.dumps(v)) for k, v in TWILIO_SAMPLES.items()}
    connected, start, media = parsed["connected"], parsed["start"], parsed["media"]
    mark, dtmf, stop = parsed["mark"], parsed["dtmf"], parsed["stop"]
    assert isinstance(connected, TwilioConnected)
    assert connected.version == "1.0.0"
    assert isinstance(start, TwilioStart)
    assert (start.start.stream_sid, start.start.call_sid, start.start.account_sid) == (MZ, CA, AC)
    assert start.start.custom_parameters["FirstName"] == "Jane"
    assert start.start.media_format.encoding == "audio/x-mulaw"
    assert start.start.media_format.sample_rate == 8000
    assert start.start.media_format.channels == 1
    assert start.start.tracks == ["inbound"]
    assert start.sequence_number == 1
    assert isinstance(media, TwilioMedia)
    assert (media.media.chunk, media.media.timestamp, media.media.track) == (1, 5, "inbound")
    assert media.audio() == b"\xff" * 160
    assert isinstance(mark, TwilioMark)
    assert mark.mark.name == "my label"
    assert isinstance(dtmf, TwilioDtmf)
    assert dtmf.dtmf.digit == "1"
    assert isinstance(stop, TwilioStop)
    assert stop.stop.call_sid == CA


def test_unknown_twilio_events_and_fields_are_ignored() -> None:
    assert parse_twilio_message('{"event": "something-new", "x": 1}') is None
    assert parse_twilio_message('{"no": "event"}') is None
    extra = TWILIO_SAMPLES["mark"] | {"later": {"added": True}}
    assert isinstance(parse_twilio_message(json.dumps(extra).encode()), TwilioMark)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '"start"',
        '{"event": "start", "start": {"streamSid": "MZ1"}}',
        '{"event": "media", "media": {}}',
        '{"event": "mark", "mark": {"name": 5}}',
        '{"event": "media", "media": {"payload": "x", "chunk": "one"}}',
        b"\xff\xfe",
    ],
)
def test_malformed_twilio_messages_raise_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic and json errors alike
        parse_twilio_message(text)


def test_media_that_is_not_base64_raises_value_error() -> None:
    media = parse_twilio_message('{"event": "media", "media": {"payload": "@@@"}}')
    assert isinstance(media, TwilioMedia)
    with pytest.raises(ValueError, match="base64"):
        media.audio()


def test_messages_to_twilio_have_the_documented_shapes() -> None:
    assert json.loads(twilio_media_message(MZ, b"\xff\x7f")) == {
        "event": "media",
        "streamSid": MZ,
        "media": {"payload": "/38="},
    }
    assert json.loads(twilio_mark_message(MZ, "sentence-1")) == {
        "event": "mark",
        "streamSid": MZ,
        "mark": {"name": "sentence-1"},
    }
    assert json.loads(twilio_clear_message(MZ)) == {"event": "clear", "streamSid": MZ}
    sent = [json.loads(twilio_mark_message(MZ, name)) for name in ("a", "b")]
    assert sent_marks(sent) == ["a", "b"]


# -------------------------------------------------------------------------------------- ACS

# The examples of the ACS audio streaming quickstart.
ACS_METADATA = {
    "kind": "AudioMetadata",
    "audioMetadata": {
        "subscriptionId": "89e8cb59-b991-48b0-b154-1db84f16a077",
        "encoding": "PCM",
        "sampleRate": 16000,
        "channels": 1,
        "length": 640,
    },
}
ACS_AUDIO = {
    "kind": "AudioData",
    "audioData": {
        "timestamp": "2024-11-15T19:16:12.925Z",
        "participantRawID": "8:acs:3d20e1de-0f28-41c5",
        "data": "5ADwAOMA6AD0AA==",
        "silent": False,
    },
}
ACS_DTMF = {"kind": "DtmfData", "dtmfData": {"data": "3"}}


def test_acs_samples_parse() -> None:
    metadata = parse_acs_message(json.dumps(ACS_METADATA))
    audio = parse_acs_message(json.dumps(ACS_AUDIO))
    dtmf = parse_acs_message(json.dumps(ACS_DTMF))
    assert isinstance(metadata, AcsAudioMetadata)
    assert metadata.audio_metadata.sample_rate == 16000
    assert metadata.audio_metadata.length == 640
    assert metadata.audio_metadata.encoding == "PCM"
    assert isinstance(audio, AcsAudioData)
    assert audio.audio_data.participant_raw_id == "8:acs:3d20e1de-0f28-41c5"
    assert audio.audio_data.silent is False
    assert np.frombuffer(audio.audio(), dtype="<i2").tolist() == [228, 240, 227, 232, 244]
    assert isinstance(dtmf, AcsDtmfData)
    assert dtmf.dtmf_data.data == "3"
    assert parse_acs_message('{"kind": "TranscriptionData"}') is None
    with pytest.raises(ValueError):  # noqa: PT011
        parse_acs_message('{"kind": "AudioData", "audioData": {}}')


def test_messages_to_acs_have_the_sdk_shapes() -> None:
    assert json.loads(acs_audio_message(b"\x01\x00\x02\x00")) == {
        "kind": "AudioData",
        "audioData": {
            "data": "AQACAA==",
            "timestamp": None,
            "participant": None,
            "isSilent": False,
        },
        "stopAudio": None,
    }
    assert json.loads(acs_stop_audio_message()) == {
        "kind": "StopAudio",
        "audioData": None,
        "stopAudio": {},
    }


# --------------------------------------------------------------------------- scripted clients


def test_a_scripted_twilio_call_parses_in_order() -> None:
    call = TwilioCall()
    frames = speech_mulaw_frames(speech_clip("03_goforward_16k.wav"))
    script = [
        call.connected(),
        call.start({"session_id": call.call_sid, "token": "1.x"}),
        *call.media_stream(frames[:3]),
        call.mark("s1"),
        call.dtmf("#"),
        call.stop(),
    ]
    parsed = [parse_twilio_message(json.dumps(m)) for m in script]
    assert [type(p) for p in parsed] == [
        TwilioConnected, TwilioStart, TwilioMedia, TwilioMedia, TwilioMedia,
        TwilioMark, TwilioDtmf, TwilioStop,
    ]  # fmt: skip
    start = parsed[1]
    assert isinstance(start, TwilioStart)
    assert start.start.custom_parameters == {"session_id": call.call_sid, "token": "1.x"}
    media = [p for p in parsed if isinstance(p, TwilioMedia)]
    assert [(m.media.chunk, m.media.timestamp) for m in media] == [(1, 0), (2, 20), (3, 40)]
    assert [m.audio() for m in media] == frames[:3]
    numbered = [p for p in parsed if p is not None and not isinstance(p, TwilioConnected)]
    assert [p.sequence_number for p in numbered] == list(range(1, 8))


def test_speech_becomes_20_ms_mulaw_frames_that_sound_like_it() -> None:
    path = speech_clip("03_goforward_16k.wav")
    frames = speech_mulaw_frames(path)
    pcm = speech_pcm(path, 8000)
    assert {len(frame) for frame in frames} == {160}
    assert len(frames) == -(-len(pcm) // 320)
    heard = np.frombuffer(sent_audio(TwilioCall().media_stream(frames)), dtype="<i2")
    original = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    error = heard[: original.size] - original
    snr_db = 10 * np.log10(np.sum(original**2) / np.sum(error**2))
    assert snr_db > 25  # G.711 keeps speech at about 35-38 dB
    assert ulaw_decode(frames[-1])[-2:] == b"\x00\x00"  # padded with silence


def test_a_scripted_acs_call_parses_and_round_trips_its_audio() -> None:
    call = AcsCall(sample_rate=24000)
    pcm = speech_pcm(speech_clip("03_goforward_16k.wav"), 24000)[: 960 * 5 + 100]
    messages = [call.metadata(), *call.audio_stream(pcm)]
    parsed = [parse_acs_message(json.dumps(m)) for m in messages]
    metadata = parsed[0]
    assert isinstance(metadata, AcsAudioMetadata)
    assert metadata.audio_metadata.sample_rate == 24000
    assert metadata.audio_metadata.length == 960
    audio = [p for p in parsed if isinstance(p, AcsAudioData)]
    assert len(audio) == 6
    assert [a.audio_data.timestamp for a in audio[:2]] == [
        "2026-01-01T00:00:00.000Z",
        "2026-01-01T00:00:00.020Z",
    ]
    assert acs_sent_audio([json.loads(acs_audio_message(pcm))]) == pcm
