"""POST /api/orchestrator/dialogue: one spoken turn over HTTP."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from ..audio import Audio, DecodedInput, decode, encode_wav, wav_header
from ..errors import InvalidAudio, InvalidRequest, UnsupportedMediaType
from ..observability import session_id_var
from ..pipeline.aio import aclose
from ..pipeline.dialogue import AudioChunk, TranscriptReady, TurnDone, TurnEvent, TurnTimings
from ..pipeline.sessions import SESSION_ID
from ..pipeline.turns import SessionRef
from .deps import Services, ServicesDep
from .errors import CLIENT_CLOSED_REQUEST
from .schemas import AudioPayload, DialogueResponse, ErrorBody, InputInfo, OutputInfo

logger = logging.getLogger(__name__)
router = APIRouter()

T = TypeVar("T")

# Any audio/* body is decoded by its content; these are the types documented in the schema.
DOCUMENTED_AUDIO_TYPES = (
    "audio/wav", "audio/x-wav", "audio/wave", "audio/flac", "audio/ogg", "audio/webm",
    "audio/mp4", "audio/mpeg",
)  # fmt: skip
VOICE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")
HEADER_TEXT_LIMIT = 1000
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Invalid audio or parameter",
        401: "Missing or wrong API key",
        413: "Body over ORCH_MAX_UPLOAD_BYTES",
        415: "Neither multipart nor audio/*",
        422: "No speech recognized",
        429: "No dialogue slot free in time",
        500: "Internal error",
        502: "An upstream answered with an error",
        503: "An upstream is unavailable",
        504: "A stage timed out",
    }.items()
}
_OPTION_PROPERTIES = {
    "session_id": {"type": "string", "pattern": SESSION_ID.pattern},
    "voice": {"type": "string", "pattern": VOICE.pattern},
    "language": {"type": "string", "pattern": LANGUAGE.pattern},
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
class _Options:
    session_id: str | None
    voice: str | None
    language: str | None


@router.post(
    "/api/orchestrator/dialogue",
    summary="Answer a spoken question with speech",
    response_class=Response,
    responses={
        200: {
            "description": "The spoken answer (16-bit PCM mono WAV), or JSON with "
            "`Accept: application/json`",
            "content": {
                "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/DialogueResponse"}},
            },
        },
        **_ERRORS,
    },
    openapi_extra=OPENAPI_EXTRA,
)
async def dialogue(
    request: Request,
    services: ServicesDep,
    stream: Annotated[bool, Query(description="Send the WAV chunked as it is made")] = False,
    session_id: Annotated[str | None, Query(pattern=SESSION_ID.pattern)] = None,
    voice: Annotated[str | None, Query(pattern=VOICE.pattern)] = None,
    language: Annotated[str | None, Query(pattern=LANGUAGE.pattern)] = None,
) -> Response:
    received = time.perf_counter()
    data, fields = await _read_upload(request)
    options = _options(fields, session_id=session_id, voice=voice, language=language)
    settings = services.settings
    decoded = await asyncio.to_thread(
        decode,
        data,
        min_s=settings.min_audio_s,
        max_s=settings.max_audio_s,
        target_rate=services.providers.stt.sample_rate,
    )
    del data
    if options.session_id:
        session_id_var.set(options.session_id)
    wants_json = _wants_json(request.headers.get("accept", ""))
    session = (
        SessionRef(services.owner(request), options.session_id) if options.session_id else None
    )

    # The turn's events hold a dialogue slot from the first one until they are closed.
    events = services.turns.run(
        session,
        decoded.audio,
        started_at=received,
        voice=options.voice,
        language=options.language,
    )
    exits = AsyncExitStack()
    exits.push_async_callback(aclose, events)
    try:
        if stream and not wants_json:
            response = await _streamed(request, services, events, decoded, session, exits)
            exits = AsyncExitStack()  # the response owns the slot and the turn now
            return response
        done, audio = await _until_disconnect(request, _collect(events))
    except ClientDisconnected:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    finally:
        await exits.aclose()
    await services.turns.remember(session, done.transcript, done.response_text)
    if wants_json:
        return _json_response(request, decoded, options, done, audio)
    return Response(
        encode_wav(audio), media_type="audio/wav", headers=_headers(decoded, options, done, audio)
    )


async def _read_upload(request: Request) -> tuple[bytes, Mapping[str, str]]:
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


def _options(fields: Mapping[str, str], **query: str | None) -> _Options:
    values = {name: fields.get(name) or query.get(name) or None for name in query}
    session_id, voice, language = values["session_id"], values["voice"], values["language"]
    if session_id is not None and not SESSION_ID.match(session_id):
        raise InvalidRequest("session_id must be 1-128 characters of A-Z, a-z, 0-9, _ and -.")
    if voice is not None and not VOICE.match(voice):
        raise InvalidRequest("voice must be 1-64 characters of A-Z, a-z, 0-9, _, . and -.")
    if language is not None and not LANGUAGE.match(language):
        raise InvalidRequest("language must be a language code such as 'en' or 'en-US'.")
    return _Options(session_id, voice, language)


def _wants_json(accept: str) -> bool:
    return "application/json" in accept.lower() and "audio/" not in accept.lower()


async def _collect(events: AsyncIterator[TurnEvent]) -> tuple[TurnDone, Audio]:
    chunks: list[Audio] = []
    async for event in events:
        if isinstance(event, AudioChunk):
            chunks.append(event.audio)
        elif isinstance(event, TurnDone):
            return event, Audio.concatenate(chunks, event.sample_rate)
    raise RuntimeError("the turn ended without a result")


class ClientDisconnected(Exception):
    """The client went away before its answer was ready."""


async def _until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Awaits ``work`` unless the client disconnects first, in which case it is cancelled."""
    task = asyncio.ensure_future(work)
    watch = asyncio.create_task(_disconnected(request.receive))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            logger.info("client disconnected, turn cancelled")
            raise ClientDisconnected
        return task.result()
    finally:
        task.cancel()
        watch.cancel()
        await asyncio.wait({task, watch})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _TurnStream(StreamingResponse):
    """A streaming response that releases what it owns however the stream ends."""

    def __init__(self, content: AsyncIterator[bytes], exits: AsyncExitStack, **kw: Any) -> None:
        super().__init__(content, **kw)
        self._exits = exits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._exits.aclose()


async def _first_audio(events: AsyncIterator[TurnEvent]) -> tuple[AudioChunk, str]:
    transcript = ""
    async for event in events:
        if isinstance(event, TranscriptReady):
            transcript = event.text
        elif isinstance(event, AudioChunk):
            return event, transcript
    raise RuntimeError("the turn ended without audio")


async def _streamed(
    request: Request,
    services: Services,
    events: AsyncIterator[TurnEvent],
    decoded: DecodedInput,
    session: SessionRef | None,
    exits: AsyncExitStack,
) -> Response:
    # Wait for the first audio so that a failing stage still gets its proper error status.
    first, transcript = await _until_disconnect(request, _first_audio(events))
    rate = first.audio.sample_rate

    async def body() -> AsyncIterator[bytes]:
        yield wav_header(rate) + first.audio.pcm
        try:
            async for event in events:
                if isinstance(event, AudioChunk):
                    yield event.audio.pcm
                elif isinstance(event, TurnDone):
                    await services.turns.remember(session, event.transcript, event.response_text)
        except Exception as e:
            # The status line is gone; the stream ends short and the log says why.
            logger.warning("streamed turn failed", extra={"code": getattr(e, "code", None)})

    headers = _input_headers(decoded)
    headers["X-Transcript"] = _header_text(transcript)
    if session is not None:
        headers["X-Session-Id"] = session.id
    return _TurnStream(body(), exits, media_type="audio/wav", headers=headers)


def _input_headers(decoded: DecodedInput) -> dict[str, str]:
    return {
        "X-Input-Duration": f"{decoded.duration_s:.3f}",
        "X-Input-Sample-Rate": str(decoded.source_sample_rate),
        "X-Input-Channels": str(decoded.channels),
    }


def _header_text(text: str) -> str:
    return quote(text[:HEADER_TEXT_LIMIT], safe="")


def _timing_headers(timings: TurnTimings) -> dict[str, str]:
    def ms(value: float | None) -> str:
        return f"{value or 0.0:.1f}"

    stt, llm, tts, total = (ms(timings.stt_ms), ms(timings.llm_ms), ms(timings.tts_ms),
                            ms(timings.total_ms))  # fmt: skip
    return {
        "X-Processing-Time-STT": stt,
        "X-Processing-Time-LLM": llm,
        "X-Processing-Time-TTS": tts,
        "X-Processing-Time-Total": total,
        "X-Time-To-First-Audio": ms(timings.first_audio_ms),
        "Server-Timing": f"stt;dur={stt}, llm;dur={llm}, tts;dur={tts}, total;dur={total}",
    }


def _headers(
    decoded: DecodedInput, options: _Options, done: TurnDone, audio: Audio
) -> dict[str, str]:
    headers = _timing_headers(done.timings)
    headers.update(_input_headers(decoded))
    headers["X-Output-Duration"] = f"{audio.duration_s:.3f}"
    headers["X-Output-Sample-Rate"] = str(audio.sample_rate)
    headers["X-Transcript"] = _header_text(done.transcript)
    headers["X-Response-Text"] = _header_text(done.response_text)
    if options.session_id:
        headers["X-Session-Id"] = options.session_id
    return headers


def _json_response(
    request: Request, decoded: DecodedInput, options: _Options, done: TurnDone, audio: Audio
) -> Response:
    body = DialogueResponse(
        transcript=done.transcript,
        response_text=done.response_text,
        session_id=options.session_id,
        request_id=request.scope["state"]["request_id"],
        timings_ms=done.timings.as_dict(),
        input=InputInfo(
            duration_s=round(decoded.duration_s, 3),
            sample_rate=decoded.source_sample_rate,
            channels=decoded.channels,
            format=decoded.format,
        ),
        output=OutputInfo(duration_s=round(audio.duration_s, 3), sample_rate=audio.sample_rate),
        audio=AudioPayload(
            sample_rate=audio.sample_rate,
            duration_s=round(audio.duration_s, 3),
            data_base64=base64.b64encode(encode_wav(audio)).decode("ascii"),
        ),
    )
    headers = _timing_headers(done.timings)
    if options.session_id:
        headers["X-Session-Id"] = options.session_id
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)
