"""Response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from ..patterns import SESSION_ID, VOICE


class ErrorDetail(BaseModel):
    code: str = Field(examples=["INVALID_AUDIO_FORMAT"])
    message: str
    stage: str = Field(examples=["validation"])
    request_id: str | None = None
    retry_after_s: float | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class InputInfo(BaseModel):
    duration_s: float
    sample_rate: int
    channels: int
    format: str


class OutputInfo(BaseModel):
    duration_s: float
    sample_rate: int


class AudioPayload(BaseModel):
    format: str = "wav"
    sample_rate: int
    duration_s: float
    data_base64: str


class DialogueResponse(BaseModel):
    """The turn as JSON, returned for ``Accept: application/json``."""

    transcript: str
    response_text: str
    session_id: str | None
    request_id: str
    timings_ms: dict[str, float]
    input: InputInfo
    output: OutputInfo
    audio: AudioPayload


HealthState = Literal["healthy", "degraded", "unhealthy"]


class ServiceHealth(BaseModel):
    """One stage: its probe and what recent real calls of it did."""

    status: HealthState
    provider: str = Field(examples=["openai"])
    model: str
    latency_ms: float = Field(description="How long the probe took")
    detail: str = Field(description="Why the stage is not healthy; empty when it is")


class Concurrency(BaseModel):
    limit: int = Field(
        description="Dialogue slots (ORCH_MAX_CONCURRENCY): of this process, or of every "
        "instance sharing the admission store when it is Redis"
    )
    active: int = Field(description="Slots held by this process")
    waiting: int = Field(description="Requests of this process waiting for a slot")
    store: Literal["memory", "redis"] = Field("memory", description="ORCH_ADMISSION_STORE")
    store_ok: bool = Field(True, description="Whether the admission store answers")


class StageServices(BaseModel):
    stt: ServiceHealth
    llm: ServiceHealth
    tts: ServiceHealth


class StatusResponse(BaseModel):
    """The service and its three stages; the HTTP status is 503 when ``status`` is unhealthy."""

    status: HealthState
    version: str
    uptime_s: float
    checked_at: datetime = Field(description="When the probes reported here ran (UTC)")
    concurrency: Concurrency
    services: StageServices


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "draining"]


# WebSocket messages from the client (JSON text frames), told apart by "type".
class SessionStart(BaseModel):
    type: Literal["session.start"]
    session_id: str | None = Field(None, pattern=SESSION_ID.pattern)
    voice: str | None = Field(None, pattern=VOICE.pattern)


class InputCommit(BaseModel):
    type: Literal["input.commit"]


class ResponseCancel(BaseModel):
    type: Literal["response.cancel"]


class SessionEnd(BaseModel):
    type: Literal["session.end"]


class PlaybackMark(BaseModel):
    """The client has played ``played_ms`` of the turn's audio."""

    type: Literal["playback.mark"]
    turn_id: str = Field(max_length=64)
    played_ms: float = Field(ge=0)


ClientMessage = Annotated[
    SessionStart | InputCommit | ResponseCancel | SessionEnd | PlaybackMark,
    Field(discriminator="type"),
]


# WebSocket messages from the server (JSON text frames; the answer's audio goes as binary).
class AudioFormat(BaseModel):
    format: Literal["pcm_s16le"] = "pcm_s16le"
    sample_rate: int | None = None
    channels: int = 1


class SessionStarted(BaseModel):
    type: Literal["session.started"] = "session.started"
    session_id: str
    resumed: bool
    input_audio: AudioFormat
    output_audio: AudioFormat


class SpeechStartedEvent(BaseModel):
    type: Literal["speech.started"] = "speech.started"


class SpeechStoppedEvent(BaseModel):
    type: Literal["speech.stopped"] = "speech.stopped"


class TranscriptFinalEvent(BaseModel):
    type: Literal["transcript.final"] = "transcript.final"
    turn_id: str
    text: str


class TextDeltaEvent(BaseModel):
    type: Literal["response.text.delta"] = "response.text.delta"
    turn_id: str
    text: str


class AudioStartEvent(BaseModel):
    type: Literal["response.audio.start"] = "response.audio.start"
    turn_id: str
    sample_rate: int


class AudioPausedEvent(BaseModel):
    type: Literal["response.audio.paused"] = "response.audio.paused"
    turn_id: str


class AudioResumedEvent(BaseModel):
    type: Literal["response.audio.resumed"] = "response.audio.resumed"
    turn_id: str


class AudioDoneEvent(BaseModel):
    type: Literal["response.audio.done"] = "response.audio.done"
    turn_id: str


class ResponseDoneEvent(BaseModel):
    type: Literal["response.done"] = "response.done"
    turn_id: str
    text: str
    interrupted: bool
    timings_ms: dict[str, float]


class InterruptedEvent(BaseModel):
    type: Literal["response.interrupted"] = "response.interrupted"
    turn_id: str


class ToolCallEvent(BaseModel):
    type: Literal["tool.call"] = "tool.call"
    turn_id: str
    call_id: str
    name: str


class ToolResultEvent(BaseModel):
    type: Literal["tool.result"] = "tool.result"
    turn_id: str
    call_id: str
    ok: bool
    ms: float


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str
    stage: str
    turn_id: str | None = None
    retry_after_s: float | None = None


class SessionEnded(BaseModel):
    type: Literal["session.ended"] = "session.ended"
    session_id: str


ServerMessage = Annotated[
    SessionStarted
    | SpeechStartedEvent
    | SpeechStoppedEvent
    | TranscriptFinalEvent
    | TextDeltaEvent
    | AudioStartEvent
    | AudioPausedEvent
    | AudioResumedEvent
    | AudioDoneEvent
    | ResponseDoneEvent
    | InterruptedEvent
    | ToolCallEvent
    | ToolResultEvent
    | ErrorEvent
    | SessionEnded,
    Field(discriminator="type"),
]
