"""Response bodies of the HTTP API."""

from __future__ import annotations

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
