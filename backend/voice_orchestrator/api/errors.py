"""The only place where exceptions become HTTP statuses and error bodies."""

from __future__ import annotations

import logging
import math
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import OrchestratorError, ProviderError
from ..observability import note_error_code, request_id_var

logger = logging.getLogger(__name__)

STATUS_BY_CODE = {
    "INVALID_AUDIO_FORMAT": 400,
    "AUDIO_TOO_SHORT": 400,
    "AUDIO_TOO_LONG": 400,
    "INVALID_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "SESSION_NOT_FOUND": 404,
    "REQUEST_TIMEOUT": 408,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "SPEECH_RECOGNITION_FAILED": 422,
    "TOO_MANY_REQUESTS": 429,
    "SERVICE_DRAINING": 503,
    "RATE_LIMITED": 429,
    "ADMISSION_STORE_UNAVAILABLE": 503,
    "INTERNAL_ERROR": 500,
}
# WebSocket close codes (RFC 6455 and the IANA registry).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # idle too long
CLOSE_POLICY_VIOLATION = 1008  # a phone stream without a valid token
CLOSE_SERVICE_RESTART = 1012  # draining: reconnect elsewhere
CLOSE_TRY_AGAIN_LATER = 1013  # too many sockets
# Never seen by the client, which is gone; it marks the case in access logs.
CLIENT_CLOSED_REQUEST = 499
STATUS_BY_PROVIDER_KIND = {"SERVICE_ERROR": 502, "SERVICE_UNAVAILABLE": 503, "TIMEOUT": 504}
# Refused while the body was still arriving: the connection is closed after the answer, or the
# server would go on reading (and discarding) whatever the client still sends.
CLOSE_CONNECTION = {"PAYLOAD_TOO_LARGE", "REQUEST_TIMEOUT"}


def status_of(error: OrchestratorError) -> int:
    if isinstance(error, ProviderError):
        return STATUS_BY_PROVIDER_KIND[error.kind]
    return STATUS_BY_CODE.get(error.code, 500)


def error_response(
    status: int,
    code: str,
    message: str,
    stage: str,
    *,
    retry_after_s: float | None = None,
) -> JSONResponse:
    request_id = request_id_var.get()
    note_error_code(code)
    headers = {}
    if retry_after_s is not None and status in (429, 503):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_s)))
    if code in CLOSE_CONNECTION:
        headers["Connection"] = "close"
    body = {
        "error": {
            "code": code,
            "message": message,
            "stage": stage,
            "request_id": request_id,
            "retry_after_s": retry_after_s,
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def from_exception(error: OrchestratorError) -> JSONResponse:
    status = status_of(error)
    log = logger.warning if status >= 500 else logger.info
    log("request failed", extra={"code": error.code, "stage": error.stage, "status": status})
    return error_response(
        status, error.code, error.message, error.stage, retry_after_s=error.retry_after_s
    )


def internal_error() -> JSONResponse:
    return error_response(500, "INTERNAL_ERROR", "An internal error occurred.", "internal")


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OrchestratorError)
    return from_exception(exc)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = sorted({".".join(str(p) for p in err.get("loc", ())[1:]) for err in exc.errors()})
    names = ", ".join(f for f in fields if f)
    message = f"Invalid parameter: {names}." if names else "Invalid request."
    return error_response(400, "INVALID_REQUEST", message, "validation")


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    code = phrase.upper().replace(" ", "_").replace("-", "_")
    response = error_response(exc.status_code, code, phrase + ".", "validation")
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(OrchestratorError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
