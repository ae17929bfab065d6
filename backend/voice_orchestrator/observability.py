"""Logging set-up and the request and session ids that every log line carries."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
session_id_var: ContextVar[str | None] = ContextVar("session_id", default=None)


@dataclass(slots=True)
class ResponseNote:
    """What the request metrics want to know about a response beyond its status: the error
    code of an error body. Mutable, so a handler running in a copied context can fill it in."""

    error_code: str | None = None


response_note_var: ContextVar[ResponseNote | None] = ContextVar("response_note", default=None)


def note_error_code(code: str) -> None:
    """Tells the request metrics which error code the current response carries."""
    note = response_note_var.get()
    if note is not None:
        note.error_code = code


# Attributes every LogRecord has; anything else was passed through ``extra=`` and is logged.
# ``color_message`` is uvicorn's ANSI-coloured copy of the message.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}
)
# Browsers' WebSocket clients may send the API key in the query string, which uvicorn logs.
_KEY_IN_QUERY = re.compile(r"(?i)([?&](?:api_key|api-key|key|token)=)[^&\s\"]*")
# At DEBUG, uvicorn's WebSocket handshake logs every request header, credentials included.
_KEY_IN_HEADER = re.compile(
    r"(?i)^([<>] (?:authorization|proxy-authorization|x-api-key|cookie|set-cookie):).*$"
)
_ACCESS_FIELDS = ("client_addr", "method", "path", "http_version", "status_code")


class UvicornFilter(logging.Filter):
    """Gives uvicorn's access lines structured fields and masks keys in logged query strings
    and credential headers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("uvicorn"):
            return True
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            fields = dict(zip(_ACCESS_FIELDS, args, strict=True))
            fields["path"] = _KEY_IN_QUERY.sub(r"\1***", str(fields["path"]))
            for name, value in fields.items():
                setattr(record, name, value)
        message = record.getMessage()
        masked = _KEY_IN_HEADER.sub(r"\1 ***", _KEY_IN_QUERY.sub(r"\1***", message))
        if masked != message:
            record.msg, record.args = masked, None
        return True


class ContextFilter(logging.Filter):
    """Stamps the current request and session ids onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.session_id = session_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line. Exceptions are reduced to their type: traces stay out of logs
    unless DEBUG is on."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and value is not None:
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                entry["trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRS and value is not None
        )
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[0] is not None:
            extras += f" exception={record.exc_info[0].__name__}"
        return f"{line} {extras}".rstrip()


def configure_logging(fmt: str, level: str, stream: IO[str] | None = None) -> None:
    """Routes the service's, uvicorn's (access log included) and the root logger's lines
    through one handler on ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(UvicornFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Libraries that narrate every call at INFO; their warnings still come through.
    for name in ("httpx", "httpx2", "faster_whisper", "openai"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
