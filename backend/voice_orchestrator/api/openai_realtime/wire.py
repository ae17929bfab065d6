"""Server events of the OpenAI Realtime protocol, in either dialect.

Every event is validated through the ``openai`` SDK's own model of it (``openai.types.realtime``
for the GA protocol, ``openai.types.beta.realtime`` for the beta one), so the field names and
shapes are the SDK's. Events are named by their GA type; the beta names differ for audio, text
and conversation items, and the GA ``conversation.item.done`` has no beta counterpart.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Literal

from fastapi import WebSocket
from openai.types import realtime as ga
from openai.types.beta import realtime as beta
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect

from ...errors import OrchestratorError, ProviderError
from ..sockets import ListenerGone

Dialect = Literal["ga", "beta"]

_MODELS: dict[str, tuple[type[BaseModel], type[BaseModel] | None]] = {
    "error": (ga.RealtimeErrorEvent, beta.ErrorEvent),
    "session.created": (ga.SessionCreatedEvent, beta.SessionCreatedEvent),
    "session.updated": (ga.SessionUpdatedEvent, beta.SessionUpdatedEvent),
    "input_audio_buffer.speech_started": (
        ga.InputAudioBufferSpeechStartedEvent,
        beta.InputAudioBufferSpeechStartedEvent,
    ),
    "input_audio_buffer.speech_stopped": (
        ga.InputAudioBufferSpeechStoppedEvent,
        beta.InputAudioBufferSpeechStoppedEvent,
    ),
    "input_audio_buffer.committed": (
        ga.InputAudioBufferCommittedEvent,
        beta.InputAudioBufferCommittedEvent,
    ),
    "input_audio_buffer.cleared": (
        ga.InputAudioBufferClearedEvent,
        beta.InputAudioBufferClearedEvent,
    ),
    "conversation.item.added": (ga.ConversationItemAdded, beta.ConversationItemCreatedEvent),
    "conversation.item.done": (ga.ConversationItemDone, None),
    "conversation.item.truncated": (
        ga.ConversationItemTruncatedEvent,
        beta.ConversationItemTruncatedEvent,
    ),
    "conversation.item.input_audio_transcription.completed": (
        ga.ConversationItemInputAudioTranscriptionCompletedEvent,
        beta.ConversationItemInputAudioTranscriptionCompletedEvent,
    ),
    "response.created": (ga.ResponseCreatedEvent, beta.ResponseCreatedEvent),
    "response.done": (ga.ResponseDoneEvent, beta.ResponseDoneEvent),
    "response.output_item.added": (
        ga.ResponseOutputItemAddedEvent,
        beta.ResponseOutputItemAddedEvent,
    ),
    "response.output_item.done": (
        ga.ResponseOutputItemDoneEvent,
        beta.ResponseOutputItemDoneEvent,
    ),
    "response.content_part.added": (
        ga.ResponseContentPartAddedEvent,
        beta.ResponseContentPartAddedEvent,
    ),
    "response.content_part.done": (
        ga.ResponseContentPartDoneEvent,
        beta.ResponseContentPartDoneEvent,
    ),
    "response.output_audio.delta": (ga.ResponseAudioDeltaEvent, beta.ResponseAudioDeltaEvent),
    "response.output_audio.done": (ga.ResponseAudioDoneEvent, beta.ResponseAudioDoneEvent),
    "response.output_audio_transcript.delta": (
        ga.ResponseAudioTranscriptDeltaEvent,
        beta.ResponseAudioTranscriptDeltaEvent,
    ),
    "response.output_audio_transcript.done": (
        ga.ResponseAudioTranscriptDoneEvent,
        beta.ResponseAudioTranscriptDoneEvent,
    ),
    "response.output_text.delta": (ga.ResponseTextDeltaEvent, beta.ResponseTextDeltaEvent),
    "response.output_text.done": (ga.ResponseTextDoneEvent, beta.ResponseTextDoneEvent),
    "response.function_call_arguments.delta": (
        ga.ResponseFunctionCallArgumentsDeltaEvent,
        beta.ResponseFunctionCallArgumentsDeltaEvent,
    ),
    "response.function_call_arguments.done": (
        ga.ResponseFunctionCallArgumentsDoneEvent,
        beta.ResponseFunctionCallArgumentsDoneEvent,
    ),
}
_BETA_NAMES = {
    "conversation.item.added": "conversation.item.created",
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class Wire:
    """Sends server events over the socket in the client's dialect."""

    def __init__(self, websocket: WebSocket, dialect: Dialect) -> None:
        self._ws = websocket
        self.dialect: Dialect = dialect
        self._lock = asyncio.Lock()

    @property
    def beta(self) -> bool:
        return self.dialect == "beta"

    async def send(self, ga_type: str, **payload: Any) -> None:
        """Sends the event of GA type ``ga_type``; nothing when the dialect has none."""
        text = self.build(ga_type, **payload)
        if text is not None:
            await self.send_text(text)

    def build(self, ga_type: str, **payload: Any) -> str | None:
        """The event as JSON, validated by the SDK's model (pydantic ValidationError when the
        payload does not fit it); None when the dialect has no such event."""
        ga_model, beta_model = _MODELS[ga_type]
        model = beta_model if self.beta else ga_model
        if model is None:
            return None
        name = _BETA_NAMES.get(ga_type, ga_type) if self.beta else ga_type
        event = model.model_validate({"type": name, "event_id": new_id("event"), **payload})
        return event.model_dump_json(exclude_unset=True)

    async def send_text(self, text: str) -> None:
        async with self._lock:
            try:
                await self._ws.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError) as e:
                raise ListenerGone from e

    async def error(self, error: OrchestratorError, *, event_id: str | None = None) -> None:
        await self.send("error", error=error_body(error, event_id=event_id))

    # -- items -------------------------------------------------------------------------------

    def message(
        self,
        item_id: str,
        role: Literal["user", "assistant"],
        *,
        audio: bool,
        text: str | None,
        status: str = "completed",
    ) -> dict[str, Any]:
        """A message item: the user's audio (``text`` its transcript) or text, or the
        assistant's audio (``text`` its transcript) or text."""
        if role == "user":
            kind = "input_audio" if audio else "input_text"
        elif self.beta:
            kind = "audio" if audio else "text"
        else:
            kind = "output_audio" if audio else "output_text"
        content = {"type": kind, ("transcript" if audio else "text"): text}
        return {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": role,
            "status": status,
            "content": [content],
        }

    def response(
        self,
        response_id: str,
        *,
        status: str,
        speak: bool,
        voice: str,
        output_format: str,
        output: list[dict[str, Any]],
        error: OrchestratorError | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        details: dict[str, Any] | None = None
        if status in ("cancelled", "failed", "incomplete"):
            details = {"type": status}
            if reason is not None:
                details["reason"] = reason
            if error is not None:
                details["error"] = error_body(error)
        body: dict[str, Any] = {
            "id": response_id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": output,
            "usage": None,
        }
        if self.beta:
            body["modalities"] = ["text", "audio"] if speak else ["text"]
            body["output_audio_format"] = output_format
            body["voice"] = voice
        else:
            body["output_modalities"] = ["audio"] if speak else ["text"]
            body["audio"] = {"output": {"format": ga_format(output_format), "voice": voice}}
        return body


def error_body(error: OrchestratorError, *, event_id: str | None = None) -> dict[str, Any]:
    """An error as the protocol carries it; ``code`` is the contract's code."""
    kind = "server_error" if isinstance(error, ProviderError) else "invalid_request_error"
    if error.code in ("INTERNAL_ERROR", "TOO_MANY_REQUESTS", "IDLE_TIMEOUT"):
        kind = "server_error"
    return {"type": kind, "code": error.code, "message": error.message, "event_id": event_id}


def ga_format(name: str) -> dict[str, Any]:
    """A beta audio format name as the GA format object."""
    if name == "g711_ulaw":
        return {"type": "audio/pcmu"}
    if name == "g711_alaw":
        return {"type": "audio/pcma"}
    return {"type": "audio/pcm", "rate": 24000}
