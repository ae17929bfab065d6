"""The request side of POST /api/orchestrator/dialogue: the upload and its options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..encoding import OutputFormat
from ..errors import InvalidAudio, InvalidRequest, UnsupportedMediaType
from ..languages import check_language
from ..patterns import LANGUAGE, SESSION_ID, VOICE

# Any audio/* body is decoded by its content; these are the types documented in the schema.
DOCUMENTED_AUDIO_TYPES = (
    "audio/wav", "audio/x-wav", "audio/wave", "audio/flac", "audio/ogg", "audio/webm",
    "audio/mp4", "audio/mpeg",
)  # fmt: skip
_OPTION_PROPERTIES = {
    "session_id": {"type": "string", "pattern": SESSION_ID.pattern},
    "voice": {"type": "string", "pattern": VOICE.pattern},
    "language": {"type": "string", "pattern": LANGUAGE.pattern},
    "response_format": {"type": "string", "enum": [f.value for f in OutputFormat]},
}
_AUDIO_BODY = {"schema": {"type": "string", "format": "binary"}}
OPENAPI_EXTRA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["audio"],
                    "properties": {
                        "audio": {"type": "string", "format": "binary"},
                        **_OPTION_PROPERTIES,
                    },
                }
            },
            **dict.fromkeys(DOCUMENTED_AUDIO_TYPES, _AUDIO_BODY),
        },
    }
}


@dataclass(frozen=True, slots=True)
class DialogueOptions:
    session_id: str | None
    voice: str | None
    language: str | None
    response_format: str | None


async def read_upload(request: Request) -> tuple[bytes, Mapping[str, str]]:
    """The audio bytes and the form's text fields (none for a raw body)."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        try:
            async with request.form(max_files=1, max_fields=16) as form:
                upload = form.get("audio")
                if not isinstance(upload, UploadFile):
                    raise InvalidAudio(
                        "The multipart field 'audio' with the audio file is missing."
                    )
                data = await upload.read()
                fields = {k: v for k, v in form.items() if isinstance(v, str)}
        except StarletteHTTPException as e:  # python-multipart refused the body
            raise InvalidRequest("The multipart body is malformed.") from e
        return data, fields
    if media.startswith("audio/"):
        chunks = [chunk async for chunk in request.stream()]
        return b"".join(chunks), {}
    raise UnsupportedMediaType(
        "Send the audio as multipart/form-data (field 'audio') or as a raw audio/* body "
        "(audio/wav, audio/flac, audio/ogg, audio/mpeg, audio/mp4 or audio/webm)."
    )


def parse_options(fields: Mapping[str, str], **query: str | None) -> DialogueOptions:
    """Form fields win over query parameters of the same name."""
    values = {name: fields.get(name) or query.get(name) or None for name in query}
    session_id, voice = values["session_id"], values["voice"]
    if session_id is not None and not SESSION_ID.match(session_id):
        raise InvalidRequest("session_id must be 1-128 characters of A-Z, a-z, 0-9, _ and -.")
    if voice is not None and not VOICE.match(voice):
        raise InvalidRequest("voice must be 1-64 characters of A-Z, a-z, 0-9, _, . and -.")
    language = check_language(values["language"])
    return DialogueOptions(session_id, voice, language, values["response_format"])
