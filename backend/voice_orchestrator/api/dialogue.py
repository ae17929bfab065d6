"""POST /api/orchestrator/dialogue: one spoken turn over HTTP, on the same turn path as every
other way in (``Turns``: history, slot, redaction, the history write)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.types import Receive

from ..audio import Audio, decode
from ..encoding import OutputFormat, negotiate
from ..observability import session_id_var
from ..patterns import LANGUAGE, SESSION_ID, VOICE
from ..pipeline.aio import aclose
from ..pipeline.dialogue import AudioChunk, TranscriptReady, TurnDone, TurnEvent
from ..pipeline.turns import SessionRef
from . import answers
from .deps import ServicesDep
from .errors import CLIENT_CLOSED_REQUEST
from .schemas import ErrorBody
from .upload import OPENAPI_EXTRA, parse_options, read_upload

logger = logging.getLogger(__name__)
router = APIRouter()

T = TypeVar("T")

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
_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.post(
    "/api/orchestrator/dialogue",
    summary="Answer a spoken question with speech",
    response_class=Response,
    responses={
        200: {
            "description": "The spoken answer: 16-bit PCM mono WAV by default, or the format "
            "`response_format` or `Accept` asks for (Opus, MP3, AAC, FLAC, PCM), or JSON with "
            "`Accept: application/json`",
            "content": {
                **{fmt.content_type: _BINARY for fmt in OutputFormat},
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
    stream: Annotated[bool, Query(description="Send the answer as it is made")] = False,
    session_id: Annotated[str | None, Query(pattern=SESSION_ID.pattern)] = None,
    voice: Annotated[str | None, Query(pattern=VOICE.pattern)] = None,
    language: Annotated[str | None, Query(pattern=LANGUAGE.pattern)] = None,
    response_format: Annotated[
        str | None,
        Query(description="opus, mp3, aac, flac, wav or pcm; wins over Accept (default wav)"),
    ] = None,
) -> Response:
    received = time.perf_counter()
    data, fields = await read_upload(request)
    options = parse_options(
        fields,
        session_id=session_id,
        voice=voice,
        language=language,
        response_format=response_format,
    )
    accept = request.headers.get("accept", "")
    wants_json = _wants_json(accept)
    fmt = negotiate(None if wants_json else accept, options.response_format)
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
    owner = services.owner(request)
    session = SessionRef(owner, options.session_id) if options.session_id else None

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
            # Wait for the first audio so that a failing stage still gets its proper status.
            first, transcript = await _until_disconnect(request, _first_audio(events))
            response = answers.streamed(
                services.turns, events, first, transcript, decoded, session, exits, fmt
            )
            exits = AsyncExitStack()  # the response owns the slot and the turn now
            return response
        done, audio = await _until_disconnect(request, _collect(events))
    except ClientDisconnected:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    finally:
        await exits.aclose()
    await services.turns.remember(session, done.transcript, done.response_text, tools=done.tools)
    if wants_json:
        return await answers.as_json(request, decoded, session, done, audio, fmt)
    return await answers.whole(decoded, session, done, audio, fmt)


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


async def _first_audio(events: AsyncIterator[TurnEvent]) -> tuple[AudioChunk, str]:
    transcript = ""
    async for event in events:
        if isinstance(event, TranscriptReady):
            transcript = event.text
        elif isinstance(event, AudioChunk):
            return event, transcript
    raise RuntimeError("the turn ended without audio")


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
