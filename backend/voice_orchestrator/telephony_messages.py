"""The WebSocket messages of Twilio Media Streams and of Azure Communication Services (ACS)
bidirectional audio streaming: parsers for what the provider sends, builders for what it accepts.

Twilio: https://www.twilio.com/docs/voice/media-streams/websocket-messages (audio is base64
μ-law at 8 kHz, mono). ACS: the audio streaming quickstart of Call Automation (audio is base64
PCM s16le, 16 or 24 kHz, mono); the outgoing shapes are those the Call Automation SDKs'
``OutStreamingData`` writes.

Parsers return None for an event or kind they do not know, so that a provider adding one does
not break calls, and raise ValueError for text that is not JSON or a known message that is
malformed. Unknown fields are ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

TWILIO_SAMPLE_RATE = 8000
# Twilio sends (and plays best) 20-ms media frames: 160 μ-law bytes at 8 kHz.
TWILIO_FRAME_BYTES = 160


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


def _base64(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as e:
        raise ValueError("the audio is not valid base64") from e


# ----------------------------------------------------------------------------------- Twilio


class TwilioMediaFormat(_Wire):
    encoding: str = "audio/x-mulaw"
    sample_rate: int = TWILIO_SAMPLE_RATE
    channels: int = 1


class TwilioStreamInfo(_Wire):
    stream_sid: str
    account_sid: str = ""
    call_sid: str
    tracks: list[str] = ["inbound"]
    custom_parameters: dict[str, str] = {}
    media_format: TwilioMediaFormat = TwilioMediaFormat()


class TwilioConnected(_Wire):
    event: Literal["connected"]
    protocol: str = ""
    version: str = ""


class TwilioStart(_Wire):
    event: Literal["start"]
    sequence_number: int | None = None
    stream_sid: str | None = None
    start: TwilioStreamInfo


class TwilioMediaChunk(_Wire):
    track: str = "inbound"
    chunk: int | None = None
    timestamp: int | None = Field(None, description="Milliseconds since the stream started")
    payload: str


class TwilioMedia(_Wire):
    event: Literal["media"]
    sequence_number: int | None = None
    stream_sid: str | None = None
    media: TwilioMediaChunk

    def audio(self) -> bytes:
        """The μ-law bytes. Raises ValueError when the payload is not base64."""
        return _base64(self.media.payload)


class TwilioMarkName(_Wire):
    name: str


class TwilioMark(_Wire):
    """A mark this service sent, echoed once the audio queued before it has played (or was
    dropped by a ``clear``)."""

    event: Literal["mark"]
    sequence_number: int | None = None
    stream_sid: str | None = None
    mark: TwilioMarkName


class TwilioDigit(_Wire):
    track: str = "inbound_track"
    digit: str


class TwilioDtmf(_Wire):
    event: Literal["dtmf"]
    sequence_number: int | None = None
    stream_sid: str | None = None
    dtmf: TwilioDigit


class TwilioStopInfo(_Wire):
    account_sid: str = ""
    call_sid: str = ""


class TwilioStop(_Wire):
    event: Literal["stop"]
    sequence_number: int | None = None
    stream_sid: str | None = None
    stop: TwilioStopInfo = TwilioStopInfo()


TwilioInbound = Annotated[
    TwilioConnected | TwilioStart | TwilioMedia | TwilioMark | TwilioDtmf | TwilioStop,
    Field(discriminator="event"),
]
_TWILIO_INBOUND: TypeAdapter[TwilioInbound] = TypeAdapter(TwilioInbound)
_TWILIO_EVENTS = frozenset({"connected", "start", "media", "mark", "dtmf", "stop"})


def parse_twilio_message(text: str | bytes) -> TwilioInbound | None:
    """One message from Twilio; None for an event this module does not know."""
    data = _json_object(text)
    if data.get("event") not in _TWILIO_EVENTS:
        return None
    return _TWILIO_INBOUND.validate_python(data)


def twilio_media_message(stream_sid: str, mulaw: bytes) -> str:
    """Audio for the caller: μ-law bytes at 8 kHz."""
    payload = base64.b64encode(mulaw).decode("ascii")
    return _dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def twilio_mark_message(stream_sid: str, name: str) -> str:
    """A mark Twilio echoes back once everything sent before it has played."""
    return _dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def twilio_clear_message(stream_sid: str) -> str:
    """Drops the audio Twilio has queued; pending marks come back at once."""
    return _dumps({"event": "clear", "streamSid": stream_sid})


# -------------------------------------------------------------------------------------- ACS


class AcsAudioFormat(_Wire):
    subscription_id: str = ""
    encoding: str = "PCM"
    sample_rate: int = 16000
    channels: int = 1
    length: int | None = Field(None, description="Bytes per audio message")


class AcsAudioMetadata(_Wire):
    """The first message of a stream: the format of the audio that follows."""

    kind: Literal["AudioMetadata"]
    audio_metadata: AcsAudioFormat


class AcsAudioChunk(_Wire):
    data: str
    timestamp: str | None = None
    participant_raw_id: str | None = Field(None, alias="participantRawID")
    silent: bool = False


class AcsAudioData(_Wire):
    kind: Literal["AudioData"]
    audio_data: AcsAudioChunk

    def audio(self) -> bytes:
        """The PCM s16le bytes. Raises ValueError when the data is not base64."""
        return _base64(self.audio_data.data)


class AcsDigits(_Wire):
    data: str


class AcsDtmfData(_Wire):
    kind: Literal["DtmfData"]
    dtmf_data: AcsDigits


AcsInbound = Annotated[AcsAudioMetadata | AcsAudioData | AcsDtmfData, Field(discriminator="kind")]
_ACS_INBOUND: TypeAdapter[AcsInbound] = TypeAdapter(AcsInbound)
_ACS_KINDS = frozenset({"AudioMetadata", "AudioData", "DtmfData"})


def parse_acs_message(text: str | bytes) -> AcsInbound | None:
    """One message from ACS; None for a kind this module does not know."""
    data = _json_object(text)
    if data.get("kind") not in _ACS_KINDS:
        return None
    return _ACS_INBOUND.validate_python(data)


def acs_audio_message(pcm: bytes) -> str:
    """Audio for the call: PCM s16le at the rate the stream's metadata announced."""
    audio = {
        "data": base64.b64encode(pcm).decode("ascii"),
        "timestamp": None,
        "participant": None,
        "isSilent": False,
    }
    return _dumps({"kind": "AudioData", "audioData": audio, "stopAudio": None})


def acs_stop_audio_message() -> str:
    """Drops the audio ACS has queued for playing."""
    return _dumps({"kind": "StopAudio", "audioData": None, "stopAudio": {}})


# ----------------------------------------------------------------------------------- shared


def _json_object(text: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError("the message is not JSON") from e
    if not isinstance(data, dict):
        raise ValueError("the message is not a JSON object")
    return data


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))
