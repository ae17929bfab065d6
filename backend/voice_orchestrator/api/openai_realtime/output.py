"""Responses: ``response.create`` and ``response.cancel`` in, the core's events out as the
protocol's response events, and ``conversation.item.truncate``.

A response's first output item is an assistant message whose content part is audio with its
transcript (the audio base64 in the session's output format) or, for a text-only response,
text; a call of one of the client's functions follows it as a ``function_call`` item (``calls``).
``response.done`` reports completed, cancelled (by the client, or by the listener's speech:
``turn_detected``) or failed with the contract's error code.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ... import g711
from ...errors import InvalidRequest, OrchestratorError
from ...pipeline import events as ev
from ...pipeline.conversation import Conversation
from .calls import send_call
from .session import SessionConfig
from .wire import Wire, new_id

if TYPE_CHECKING:
    from .input import Input

_REMEMBERED_ITEMS = 32  # assistant items a truncate may still name


@dataclass(slots=True)
class _Response:
    turn_id: str
    speak: bool
    user_item: str | None
    user_seconds: float
    id: str = field(default_factory=lambda: new_id("resp"))
    item_id: str = field(default_factory=lambda: new_id("item"))
    opened: bool = False
    closed: bool = False
    output: list[dict[str, Any]] = field(default_factory=list)  # finished output items
    audio_done: bool = False
    text: list[str] = field(default_factory=list)
    reason: str = "turn_detected"


class Responses:
    def __init__(self, wire: Wire, config: SessionConfig) -> None:
        self._wire = wire
        self._config = config
        self.conversation: Conversation | None = None
        self._current: _Response | None = None
        self._next_speak: bool | None = None
        self._next_answers_user = True  # False: the next response answers function outputs
        self._audio_item: tuple[str, float] | None = None  # committed user audio, unanswered
        self._items: OrderedDict[str, str] = OrderedDict()  # assistant item id -> turn id

    def _conversation(self) -> Conversation:
        assert self.conversation is not None
        return self.conversation

    def expect_audio(self, item_id: str | None, seconds: float = 0.0) -> None:
        """A user audio item was committed: the next response answers it (None: the input
        was cleared)."""
        self._audio_item = None if item_id is None else (item_id, seconds)

    async def create(self, params: dict[str, Any], inputs: Input) -> None:
        instructions = params.get("instructions")
        modalities = params.get("output_modalities", params.get("modalities"))
        speak = None if modalities is None else "audio" in modalities
        outputs = inputs.take_tool_outputs()
        if outputs:  # a user message or audio waits for the next response.create
            self._next_speak, self._next_answers_user = speak, False
            try:
                await self._conversation().respond(
                    tool_outputs=outputs,
                    instructions=str(instructions) if instructions is not None else None,
                    speak=speak,
                )
            except OrchestratorError:  # no response started
                self._next_speak, self._next_answers_user = None, True
                raise
            return
        text = inputs.take_text()
        if text is not None:
            self._audio_item = None  # the text was the last thing said
        elif self._audio_item is None:
            raise InvalidRequest(
                "Nothing to answer: commit audio or create a user message before response.create."
            )
        self._next_speak = speak
        await self._conversation().respond(
            text=text,
            instructions=str(instructions) if instructions is not None else None,
            speak=speak,
        )

    async def cancel(self) -> None:
        if self._current is not None:
            self._current.reason = "client_cancelled"
        await self._conversation().cancel()

    async def truncate(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id")
        audio_end_ms = event.get("audio_end_ms")
        turn_id = self._items.get(item_id) if isinstance(item_id, str) else None
        if turn_id is None:
            raise InvalidRequest("No assistant audio item of that id to truncate.")
        if not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            raise InvalidRequest("audio_end_ms is a whole number of milliseconds.")
        if await self._conversation().truncate(turn_id, audio_end_ms) is None:
            raise InvalidRequest("That item is no longer the latest answer; it cannot be cut.")
        content_index = event.get("content_index", 0)
        await self._wire.send(
            "conversation.item.truncated",
            item_id=item_id,
            content_index=content_index if isinstance(content_index, int) else 0,
            audio_end_ms=audio_end_ms,
        )

    async def on_event(self, event: ev.ConversationEvent) -> None:
        if isinstance(event, ev.ResponseStarted):
            await self._started(event.turn_id)
            return
        response = self._current
        if response is None or getattr(event, "turn_id", None) != response.turn_id:
            return
        match event:
            case ev.TranscriptFinal(_, text):
                if response.user_item is not None and self._config.transcription is not None:
                    await self._wire.send(
                        "conversation.item.input_audio_transcription.completed",
                        item_id=response.user_item,
                        content_index=0,
                        transcript=text,
                        usage={"type": "duration", "seconds": round(response.user_seconds, 3)},
                    )
            case ev.TextDelta(_, text):
                await self._open(response)
                response.text.append(text)
                kind = "output_audio_transcript" if response.speak else "output_text"
                await self._send_part(response, f"response.{kind}.delta", delta=text)
            case ev.AudioFrame(_, pcm, _):
                await self._open(response)
                delta = base64.b64encode(_encode(pcm, self._config.output_format)).decode()
                await self._send_part(response, "response.output_audio.delta", delta=delta)
            case ev.AudioDone():
                response.audio_done = True
                await self._send_part(response, "response.output_audio.done")
            case ev.Interrupted():
                pass
            case ev.ToolCallRequested():
                await self._close_message(response, "completed", "".join(response.text).strip())
                index = len(response.output)
                response.output.append(await send_call(self._wire, response.id, index, event))
            case ev.ResponseDone(_, _, text, interrupted, _):
                await self._finish(response, "cancelled" if interrupted else "completed", text)
            case ev.ErrorRaised(error, _):
                await self._finish(response, "failed", "".join(response.text), error)

    async def _started(self, turn_id: str) -> None:
        speak = self._config.speak if self._next_speak is None else self._next_speak
        self._next_speak = None
        user_item, seconds = None, 0.0
        answers_user, self._next_answers_user = self._next_answers_user, True
        if answers_user:
            user_item, seconds = self._audio_item or (None, 0.0)
            self._audio_item = None
        response = _Response(turn_id, speak, user_item, seconds)
        self._current = response
        await self._wire.send("response.created", response=self._body(response, "in_progress", []))

    async def _open(self, response: _Response) -> None:
        if response.opened:
            return
        response.opened = True
        self._items[response.item_id] = response.turn_id
        while len(self._items) > _REMEMBERED_ITEMS:
            self._items.popitem(last=False)
        item = self._item(response, "", "in_progress")
        await self._wire.send(
            "response.output_item.added", response_id=response.id, output_index=0, item=item
        )
        await self._wire.send("conversation.item.added", item=item)
        await self._send_part(response, "response.content_part.added", part=self._part(response))

    async def _finish(
        self,
        response: _Response,
        status: str,
        text: str,
        error: OrchestratorError | None = None,
    ) -> None:
        self._current = None
        await self._close_message(response, status, text)
        body = self._body(response, status, response.output, error)
        await self._wire.send("response.done", response=body)

    async def _close_message(self, response: _Response, status: str, text: str) -> None:
        """Finishes the assistant message item, if the response opened one."""
        if response.opened and not response.closed:
            response.closed = True
            sent = "".join(response.text)
            if response.speak:
                if not response.audio_done:
                    await self._send_part(response, "response.output_audio.done")
                await self._send_part(
                    response, "response.output_audio_transcript.done", transcript=sent
                )
            else:
                await self._send_part(response, "response.output_text.done", text=sent)
            await self._send_part(
                response, "response.content_part.done", part=self._part(response, sent)
            )
            item = self._item(
                response, text, "completed" if status == "completed" else "incomplete"
            )
            await self._wire.send(
                "response.output_item.done", response_id=response.id, output_index=0, item=item
            )
            await self._wire.send("conversation.item.done", item=item)
            response.output.append(item)

    async def _send_part(self, response: _Response, kind: str, **payload: Any) -> None:
        await self._wire.send(
            kind,
            response_id=response.id,
            item_id=response.item_id,
            output_index=0,
            content_index=0,
            **payload,
        )

    def _item(self, response: _Response, text: str, status: str) -> dict[str, Any]:
        return self._wire.message(
            response.item_id, "assistant", audio=response.speak, text=text, status=status
        )

    def _part(self, response: _Response, text: str = "") -> dict[str, Any]:
        if response.speak:
            return {"type": "audio", "transcript": text}
        return {"type": "text", "text": text}

    def _body(
        self,
        response: _Response,
        status: str,
        output: list[dict[str, Any]],
        error: OrchestratorError | None = None,
    ) -> dict[str, Any]:
        return self._wire.response(
            response.id,
            status=status,
            speak=response.speak,
            voice=self._config.voice,
            output_format=self._config.output_format,
            output=output,
            error=error,
            reason=response.reason if status == "cancelled" else None,
        )


def _encode(pcm: bytes, audio_format: str) -> bytes:
    if audio_format == "g711_ulaw":
        return g711.ulaw_encode(pcm)
    if audio_format == "g711_alaw":
        return g711.alaw_encode(pcm)
    return pcm
