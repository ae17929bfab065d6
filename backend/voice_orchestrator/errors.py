"""Domain errors. Each carries the contract's error code, the stage it belongs to and whether a
retry could help. Only ``api/errors.py`` turns them into HTTP statuses or WebSocket close codes."""

from __future__ import annotations

from typing import Literal

Stage = Literal["validation", "admission", "auth", "stt", "llm", "tts", "internal"]
ProviderStage = Literal["stt", "llm", "tts"]


class OrchestratorError(Exception):
    """Base of every error the service reports to a client."""

    code: str = "INTERNAL_ERROR"
    stage: Stage = "internal"
    retryable: bool = False

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class InvalidAudio(OrchestratorError):
    code = "INVALID_AUDIO_FORMAT"
    stage = "validation"


class AudioTooShort(OrchestratorError):
    code = "AUDIO_TOO_SHORT"
    stage = "validation"


class AudioTooLong(OrchestratorError):
    code = "AUDIO_TOO_LONG"
    stage = "validation"


class InvalidRequest(OrchestratorError):
    code = "INVALID_REQUEST"
    stage = "validation"


class PayloadTooLarge(OrchestratorError):
    code = "PAYLOAD_TOO_LARGE"
    stage = "validation"


class UnsupportedMediaType(OrchestratorError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    stage = "validation"


class RequestTimeout(OrchestratorError):
    """The request body did not arrive within ORCH_UPLOAD_TIMEOUT_S."""

    code = "REQUEST_TIMEOUT"
    stage = "validation"


class Unauthorized(OrchestratorError):
    code = "UNAUTHORIZED"
    stage = "auth"


class SessionStoreUnavailable(OrchestratorError):
    """The shared session store (Redis) did not answer; reported as an internal error."""

    code = "INTERNAL_ERROR"
    stage = "internal"
    retryable = True


class Overloaded(OrchestratorError):
    """No dialogue slot became free in time."""

    code = "TOO_MANY_REQUESTS"
    stage = "admission"
    retryable = True


class IdleTimeout(OrchestratorError):
    """A socket carried nothing from its client for ORCH_WS_IDLE_TIMEOUT_S."""

    code = "IDLE_TIMEOUT"
    stage = "validation"


class SessionNotFound(OrchestratorError):
    """No session of that id belongs to the caller."""

    code = "SESSION_NOT_FOUND"
    stage = "validation"


class Forbidden(OrchestratorError):
    """A request that is not allowed whatever it carries (a bad webhook signature)."""

    code = "FORBIDDEN"
    stage = "auth"


class AdmissionUnavailable(OrchestratorError):
    """The shared admission store (Redis) did not answer. Admission fails closed: without the
    store no instance can know how many turns run across the cluster, so none is started."""

    code = "ADMISSION_STORE_UNAVAILABLE"
    stage = "admission"
    retryable = True


class RateLimited(OrchestratorError):
    """The caller (API key, or client address without keys) is over ORCH_RATE_LIMIT."""

    code = "RATE_LIMITED"
    stage = "admission"
    retryable = True


class Draining(OrchestratorError):
    """The instance is shutting down; the client should go to another one."""

    code = "SERVICE_DRAINING"
    stage = "admission"
    retryable = True


class SpeechNotRecognized(OrchestratorError):
    code = "SPEECH_RECOGNITION_FAILED"
    stage = "stt"


class ProviderError(OrchestratorError):
    """A provider failed. Subclasses say how; the code is derived from the stage."""

    kind: str = "SERVICE_ERROR"

    def __init__(
        self,
        stage: ProviderStage,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.stage = stage
        self.retryable = retryable
        self.code = f"{stage.upper()}_{self.kind}"


class ProviderFailed(ProviderError):
    """The upstream answered, but with a client error or a body we cannot use."""

    kind = "SERVICE_ERROR"


class ProviderUnavailable(ProviderError):
    """The upstream is unreachable, overloaded or failing on its side."""

    kind = "SERVICE_UNAVAILABLE"


class ProviderTimeout(ProviderError):
    """The stage did not finish within its timeout."""

    kind = "TIMEOUT"
