"""Scripted telephony providers for tests: the exact JSON messages Twilio Media Streams and Azure
Communication Services send, numbered and timed as they do, and real speech cut into their frames.

Only the audio codec comes from the product (g711, pinned to the reference tables by its own
tests); the messages and the signature are written here from the providers' documentation, so
that end-to-end tests check the service against the providers rather than against itself.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from voice_orchestrator.audio import decode
from voice_orchestrator.g711 import ulaw_decode, ulaw_encode

FRAME_MS = 20
TWILIO_RATE = 8000
TWILIO_FRAME_BYTES = TWILIO_RATE * FRAME_MS // 1000  # one μ-law byte per sample
MULAW_SILENCE = 0xFF

Message = dict[str, Any]


# ------------------------------------------------------------------------------------ audio


def speech_pcm(path: Path, sample_rate: int) -> bytes:
    """A speech file as mono PCM s16le at ``sample_rate``."""
    return decode(path.read_bytes(), min_s=0.0, max_s=600.0, target_rate=sample_rate).audio.pcm


def pcm_frames(pcm: bytes, sample_rate: int, frame_ms: int = FRAME_MS) -> list[bytes]:
    """PCM s16le cut into frames of ``frame_ms``, the last one padded with silence."""
    size = sample_rate * frame_ms // 1000 * 2
    return [pcm[i : i + size].ljust(size, b"\x00") for i in range(0, len(pcm), size)]


def mulaw_frames(pcm_8k: bytes) -> list[bytes]:
    """8-kHz PCM s16le as 20-ms μ-law frames (160 bytes), the last padded with silence."""
    mulaw = ulaw_encode(pcm_8k)
    return [
        mulaw[i : i + TWILIO_FRAME_BYTES].ljust(TWILIO_FRAME_BYTES, bytes([MULAW_SILENCE]))
        for i in range(0, len(mulaw), TWILIO_FRAME_BYTES)
    ]


def speech_mulaw_frames(path: Path) -> list[bytes]:
    """A speech file as Twilio sends a caller's voice: 20-ms frames of 8-kHz μ-law."""
    return mulaw_frames(speech_pcm(path, TWILIO_RATE))


def silence_mulaw_frames(duration_ms: int) -> list[bytes]:
    return [bytes([MULAW_SILENCE]) * TWILIO_FRAME_BYTES] * (duration_ms // FRAME_MS)


def sent_audio(messages: Iterable[Message]) -> bytes:
    """The 8-kHz PCM s16le of the ``media`` messages a service sent to Twilio."""
    payloads = (m["media"]["payload"] for m in messages if m.get("event") == "media")
    return ulaw_decode(b"".join(base64.b64decode(p, validate=True) for p in payloads))


def sent_marks(messages: Iterable[Message]) -> list[str]:
    """The names of the marks a service sent to Twilio, in order (echo them with ``mark``)."""
    return [m["mark"]["name"] for m in messages if m.get("event") == "mark"]


# ----------------------------------------------------------------------------------- Twilio


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def twilio_signature(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """``X-Twilio-Signature`` as Twilio computes it (see its webhook security page)."""
    signed = url + "".join(name + form[name] for name in sorted(form))
    return base64.b64encode(hmac.digest(auth_token.encode(), signed.encode(), "sha1")).decode()


@dataclass
class TwilioCall:
    """One call as Twilio plays it: the voice webhook's form, then the stream's messages with
    Twilio's numbering (``sequenceNumber`` from the start message, ``chunk`` and ``timestamp``
    per media frame, all strings)."""

    call_sid: str = field(default_factory=lambda: _sid("CA"))
    stream_sid: str = field(default_factory=lambda: _sid("MZ"))
    account_sid: str = field(default_factory=lambda: _sid("AC"))
    caller: str = "+14155550100"
    called: str = "+14155550199"
    sequence: int = 0
    chunk: int = 0

    def webhook_form(self, **extra: str) -> dict[str, str]:
        """The fields of Twilio's ``POST`` when the call comes in."""
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid,
            "CallStatus": "ringing",
            "Called": self.called,
            "Caller": self.caller,
            "Direction": "inbound",
            "From": self.caller,
            "To": self.called,
        }
        return form | extra

    def connected(self) -> Message:
        return {"event": "connected", "protocol": "Call", "version": "1.0.0"}

    def start(self, custom_parameters: Mapping[str, str]) -> Message:
        """``customParameters`` are the TwiML ``<Parameter>``s (session_id and token)."""
        return self._numbered(
            "start",
            start={
                "accountSid": self.account_sid,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": dict(custom_parameters),
            },
        )

    def media(self, mulaw_frame: bytes) -> Message:
        self.chunk += 1
        media = {
            "track": "inbound",
            "chunk": str(self.chunk),
            "timestamp": str((self.chunk - 1) * FRAME_MS),
            "payload": base64.b64encode(mulaw_frame).decode("ascii"),
        }
        return self._numbered("media", media=media)

    def media_stream(self, frames: Iterable[bytes]) -> list[Message]:
        return [self.media(frame) for frame in frames]

    def mark(self, name: str) -> Message:
        """The echo of a mark the service sent, once its audio has played."""
        return self._numbered("mark", mark={"name": name})

    def dtmf(self, digit: str) -> Message:
        return self._numbered("dtmf", dtmf={"track": "inbound_track", "digit": digit})

    def stop(self) -> Message:
        return self._numbered(
            "stop", stop={"accountSid": self.account_sid, "callSid": self.call_sid}
        )

    def _numbered(self, event: str, **body: Any) -> Message:
        self.sequence += 1
        return {
            "event": event,
            "sequenceNumber": str(self.sequence),
            **body,
            "streamSid": self.stream_sid,
        }


# -------------------------------------------------------------------------------------- ACS


@dataclass
class AcsCall:
    """One call as Azure Communication Services streams it: ``AudioMetadata`` first, then
    ``AudioData`` every 20 ms with an advancing timestamp."""

    sample_rate: int = 16000
    subscription_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    participant_raw_id: str = field(default_factory=lambda: f"8:acs:{uuid.uuid4()}")
    started: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    frames_sent: int = 0

    @property
    def frame_bytes(self) -> int:
        return self.sample_rate * FRAME_MS // 1000 * 2

    def metadata(self) -> Message:
        return {
            "kind": "AudioMetadata",
            "audioMetadata": {
                "subscriptionId": self.subscription_id,
                "encoding": "PCM",
                "sampleRate": self.sample_rate,
                "channels": 1,
                "length": self.frame_bytes,
            },
        }

    def audio(self, pcm_frame: bytes) -> Message:
        at = self.started + timedelta(milliseconds=self.frames_sent * FRAME_MS)
        self.frames_sent += 1
        silent = not np.frombuffer(pcm_frame, dtype="<i2").any()
        return {
            "kind": "AudioData",
            "audioData": {
                "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "participantRawID": self.participant_raw_id,
                "data": base64.b64encode(pcm_frame).decode("ascii"),
                "silent": silent,
            },
        }

    def audio_stream(self, pcm: bytes) -> list[Message]:
        return [self.audio(frame) for frame in pcm_frames(pcm, self.sample_rate)]

    def dtmf(self, digit: str) -> Message:
        return {"kind": "DtmfData", "dtmfData": {"data": digit}}


def acs_sent_audio(messages: Iterable[Message]) -> bytes:
    """The PCM s16le of the ``AudioData`` messages a service sent to ACS."""
    chunks = (m["audioData"]["data"] for m in messages if m.get("kind") == "AudioData")
    return b"".join(base64.b64decode(c, validate=True) for c in chunks)


def dumps(message: Message) -> str:
    return json.dumps(message)
