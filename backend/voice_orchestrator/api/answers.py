"""The response side of POST /api/orchestrator/dialogue: the answer in the format asked for,
whole or streamed, with the timing and description headers."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..audio import Audio, DecodedInput
from ..encoding import OutputFormat, StreamEncoder, encode_whole, output_rate
from ..pipeline.dialogue import AudioChunk, TurnDone, TurnEvent, TurnTimings
from ..pipeline.turns import SessionRef, Turns
from .schemas import AudioPayload, DialogueResponse, InputInfo, OutputInfo

logger = logging.getLogger(__name__)

HEADER_TEXT_LIMIT = 1000
# Formats whose encoding is a copy: done on the event loop, a thread hop would cost more.
_INLINE = (OutputFormat.WAV, OutputFormat.PCM)


async def _encode(work: Any, *args: Any, fmt: OutputFormat) -> bytes:
    if fmt in _INLINE:
        result: bytes = work(*args)
        return result
    return await asyncio.to_thread(work, *args)


def input_headers(decoded: DecodedInput) -> dict[str, str]:
    return {
        "X-Input-Duration": f"{decoded.duration_s:.3f}",
        "X-Input-Sample-Rate": str(decoded.source_sample_rate),
        "X-Input-Channels": str(decoded.channels),
    }


def header_text(text: str) -> str:
    return quote(text[:HEADER_TEXT_LIMIT], safe="")


def timing_headers(timings: TurnTimings) -> dict[str, str]:
    def ms(value: float | None) -> str:
        return f"{value or 0.0:.1f}"

    stt, llm, tts, total = (ms(timings.stt_ms), ms(timings.llm_ms), ms(timings.tts_ms),
                            ms(timings.total_ms))  # fmt: skip
    headers = {
        "X-Processing-Time-STT": stt,
        "X-Processing-Time-LLM": llm,
        "X-Processing-Time-TTS": tts,
        "X-Processing-Time-Total": total,
        "X-Time-To-First-Audio": ms(timings.first_audio_ms),
        "Server-Timing": f"stt;dur={stt}, llm;dur={llm}, tts;dur={tts}, total;dur={total}",
    }
    if timings.tools_ms is not None:
        tools = ms(timings.tools_ms)
        headers["X-Processing-Time-Tools"] = tools
        headers["Server-Timing"] += f", tools;dur={tools}"
    return headers


def _described(headers: dict[str, str], fmt: OutputFormat, rate: int) -> dict[str, str]:
    headers["X-Output-Format"] = fmt.value
    headers["X-Output-Sample-Rate"] = str(rate)
    headers["Vary"] = "Accept"
    return headers


async def whole(
    decoded: DecodedInput,
    session: SessionRef | None,
    done: TurnDone,
    audio: Audio,
    fmt: OutputFormat,
) -> Response:
    """The complete answer in ``fmt``, with every timing header."""
    body = await _encode(encode_whole, audio, fmt, fmt=fmt)
    headers = timing_headers(done.timings)
    headers.update(input_headers(decoded))
    headers["X-Output-Duration"] = f"{audio.duration_s:.3f}"
    headers["X-Transcript"] = header_text(done.transcript)
    headers["X-Response-Text"] = header_text(done.response_text)
    if session is not None:
        headers["X-Session-Id"] = session.id
    _described(headers, fmt, output_rate(fmt, audio.sample_rate))
    return Response(body, media_type=fmt.content_type, headers=headers)


async def as_json(
    request: Request,
    decoded: DecodedInput,
    session: SessionRef | None,
    done: TurnDone,
    audio: Audio,
    fmt: OutputFormat,
) -> Response:
    body = DialogueResponse(
        transcript=done.transcript,
        response_text=done.response_text,
        session_id=session.id if session is not None else None,
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
            format=fmt.value,
            sample_rate=output_rate(fmt, audio.sample_rate),
            duration_s=round(audio.duration_s, 3),
            data_base64=base64.b64encode(await _encode(encode_whole, audio, fmt, fmt=fmt)).decode(
                "ascii"
            ),
        ),
    )
    headers = timing_headers(done.timings)
    if session is not None:
        headers["X-Session-Id"] = session.id
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)


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


def streamed(
    turns: Turns,
    events: AsyncIterator[TurnEvent],
    first: AudioChunk,
    transcript: str,
    decoded: DecodedInput,
    session: SessionRef | None,
    exits: AsyncExitStack,
    fmt: OutputFormat,
) -> Response:
    """The answer sent as it is synthesized, each chunk encoded as it comes (Ogg pages, MP3 or
    ADTS frames; WAV with unknown sizes). ``exits`` (the slot, the turn) is released when the
    stream ends however it ends."""
    encoder = StreamEncoder(fmt, first.audio.sample_rate)

    async def body() -> AsyncIterator[bytes]:
        yield await _encode(encoder.encode, first.audio, fmt=fmt)
        try:
            async for event in events:
                if isinstance(event, AudioChunk):
                    if data := await _encode(encoder.encode, event.audio, fmt=fmt):
                        yield data
                elif isinstance(event, TurnDone):
                    await turns.remember(
                        session, event.transcript, event.response_text, tools=event.tools
                    )
            yield await _encode(encoder.finish, fmt=fmt)
        except Exception as e:
            # The status line is gone; the stream ends short and the log says why.
            logger.warning("streamed turn failed", extra={"code": getattr(e, "code", None)})

    headers = input_headers(decoded)
    headers["X-Transcript"] = header_text(transcript)
    if session is not None:
        headers["X-Session-Id"] = session.id
    _described(headers, fmt, encoder.sample_rate)
    return _TurnStream(body(), exits, media_type=fmt.content_type, headers=headers)
