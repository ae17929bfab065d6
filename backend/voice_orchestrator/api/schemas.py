"""Response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field


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


# WebSocket messages from the client (JSON text frames), told apart by "type".
class SessionStart(BaseModel):
    type: Literal["session.start"]
    session_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,128}$")
    voice: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class InputCommit(BaseModel):
    type: Literal["input.commit"]


class ResponseCancel(BaseModel):
    type: Literal["response.cancel"]


class SessionEnd(BaseModel):
    type: Literal["session.end"]


ClientMessage = Annotated[
    SessionStart | InputCommit | ResponseCancel | SessionEnd, Field(discriminator="type")
]
