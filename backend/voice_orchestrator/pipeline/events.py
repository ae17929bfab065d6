"""What the conversation core tells a transport. Each transport serializes these to its wire
format (our WebSocket, Twilio, ACS, the OpenAI Realtime protocol) and nothing else.

Every text in these events is as a client may see it: redacted when ORCH_REDACT is on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import OrchestratorError


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The listener's speech is confirmed (after ORCH_VAD_START_MS of voice)."""

    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The listener's utterance is over (silence, or a commit)."""

    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """A response begins; ``turn_id`` names every event of it."""

    turn_id: str


@dataclass(frozen=True, slots=True)
class TranscriptFinal:
    turn_id: str
    text: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply's text. With redaction on, a whole sentence at a time."""

    turn_id: str
    text: str


@dataclass(frozen=True, slots=True)
class AudioStarted:
    turn_id: str
    sample_rate: int


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """One frame of the answer's speech, sent when the listener's playback needs it."""

    turn_id: str
    pcm: bytes
    sample_rate: int


@dataclass(frozen=True, slots=True)
class SentenceSent:
    """The last frame of a sentence was sent; ``end_ms`` is the turn's audio sent so far.
    Transports whose far end reports playback (Twilio marks) mark this point."""

    turn_id: str
    index: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class AudioPaused:
    """Possible speech from the listener: no frame is sent until it is confirmed (the answer
    is then interrupted) or dismissed as noise (``AudioResumed``)."""

    turn_id: str


@dataclass(frozen=True, slots=True)
class AudioResumed:
    turn_id: str


@dataclass(frozen=True, slots=True)
class AudioDone:
    turn_id: str


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The answer was cut (barge-in or cancel); no frame of it follows."""

    turn_id: str


@dataclass(frozen=True, slots=True)
class ToolCalled:
    turn_id: str
    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolFinished:
    turn_id: str
    call_id: str
    name: str
    ok: bool
    ms: float


@dataclass(frozen=True, slots=True)
class ToolCallRequested:
    """The model called one of the client's own tools (``Conversation.client_tools``); sent
    after the response's audio, before its ``ResponseDone``. The client runs it and answers
    with ``respond(tool_outputs=[(call_id, output)])``. ``arguments`` is JSON text."""

    turn_id: str
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """``text`` is what the listener heard of the answer, as the history keeps it."""

    turn_id: str
    transcript: str
    text: str
    interrupted: bool
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErrorRaised:
    error: OrchestratorError
    turn_id: str | None = None


ConversationEvent = (
    SpeechStarted
    | SpeechStopped
    | ResponseStarted
    | TranscriptFinal
    | TextDelta
    | AudioStarted
    | AudioFrame
    | SentenceSent
    | AudioPaused
    | AudioResumed
    | AudioDone
    | Interrupted
    | ToolCalled
    | ToolFinished
    | ToolCallRequested
    | ResponseDone
    | ErrorRaised
)
