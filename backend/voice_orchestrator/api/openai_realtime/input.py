"""The client's side of the conversation: the input audio buffer (append, commit, clear), the
server VAD's speech events, and ``conversation.item.create`` (user text, user audio, a function
call's output).

A manual commit never answers by itself, as in OpenAI's protocol: the audio waits for
``response.create`` (push-to-talk clients send both back to back). With server VAD and
``create_response``, the end of speech commits and the core answers at once.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING, Any

from ... import g711
from ...errors import InvalidAudio, InvalidRequest
from ...pipeline import events as ev
from ...pipeline.conversation import Conversation
from .calls import output_item, tool_output
from .session import RATES, SessionConfig
from .wire import Wire, new_id

if TYPE_CHECKING:
    from .output import Responses

logger = logging.getLogger(__name__)


class Input:
    def __init__(self, wire: Wire, config: SessionConfig, responses: Responses) -> None:
        self._wire = wire
        self._config = config
        self._responses = responses
        self.conversation: Conversation | None = None
        self._item: str | None = None  # the user audio item being spoken
        self._item_ms = 0  # audio appended since the last commit
        self._started_ms: int | None = None
        self._committing = False
        self.last_item: str | None = None
        self._text: str | None = None  # a user text item waiting for response.create
        self._outputs: list[tuple[str, str]] = []  # function call outputs waiting for it

    def _conversation(self) -> Conversation:
        assert self.conversation is not None
        return self.conversation

    def take_text(self) -> str | None:
        text, self._text = self._text, None
        return text

    def take_tool_outputs(self) -> list[tuple[str, str]]:
        outputs, self._outputs = self._outputs, []
        return outputs

    async def append(self, audio: Any) -> None:
        pcm = decode(audio, self._config.input_format)
        if self._item is None:
            self._item = new_id("item")
        self._item_ms += len(pcm) * 1000 // (2 * RATES[self._config.input_format])
        await self._conversation().push_audio(pcm)

    async def commit(self) -> None:
        self._committing = True
        try:
            committed = await self._conversation().commit(respond=False)
        finally:
            self._committing = False
        if committed:
            await self._committed()

    async def clear(self) -> None:
        self._conversation().clear_input()
        self._responses.expect_audio(None)
        self._item, self._item_ms, self._started_ms = None, 0, None
        await self._wire.send("input_audio_buffer.cleared")

    async def on_speech(self, event: ev.SpeechStarted | ev.SpeechStopped) -> None:
        """The server VAD's events (also the end of speech that a manual commit cuts)."""
        if self._item is None:
            self._item = new_id("item")
        if isinstance(event, ev.SpeechStarted):
            self._started_ms = event.audio_start_ms
            await self._wire.send(
                "input_audio_buffer.speech_started",
                audio_start_ms=event.audio_start_ms,
                item_id=self._item,
            )
            return
        await self._wire.send(
            "input_audio_buffer.speech_stopped", audio_end_ms=event.audio_end_ms, item_id=self._item
        )
        if not self._committing:
            if self._started_ms is not None:
                self._item_ms = event.audio_end_ms - self._started_ms
            await self._committed()

    async def _committed(self) -> None:
        item_id = self._item or new_id("item")
        seconds = self._item_ms / 1000
        self._item, self._item_ms, self._started_ms = None, 0, None
        await self._wire.send(
            "input_audio_buffer.committed", item_id=item_id, previous_item_id=self.last_item
        )
        await self._added(self._wire.message(item_id, "user", audio=True, text=None))
        self._responses.expect_audio(item_id, seconds)

    async def create_item(self, item: Any) -> None:
        if not isinstance(item, dict):
            raise InvalidRequest("conversation.item.create needs an item object.")
        item_id = str(item.get("id") or new_id("item"))
        kind = item.get("type", "message")
        if kind == "function_call_output":
            # The client's own function ran: the next response gives the model its output.
            call_id, output = tool_output(item)
            self._outputs.append((call_id, output))
            await self._added(output_item(item_id, call_id, output))
            return
        if kind != "message" or item.get("role") != "user":
            raise InvalidRequest("Items created by the client are user messages or call outputs.")
        content = item.get("content")
        if not isinstance(content, list) or not content or not isinstance(content[0], dict):
            raise InvalidRequest("A user message needs content.")
        part = content[0]
        if part.get("type") == "input_text":
            text = str(part.get("text") or "")
            if not text.strip():
                raise InvalidRequest("The message's text is empty.")
            self._text = text
            await self._added(self._wire.message(item_id, "user", audio=False, text=text))
        elif part.get("type") == "input_audio":
            pcm = decode(part.get("audio"), self._config.input_format)
            await self._conversation().hold(pcm)
            await self._added(self._wire.message(item_id, "user", audio=True, text=None))
            self._responses.expect_audio(item_id, len(pcm) / 2 / RATES[self._config.input_format])
        else:
            raise InvalidRequest("A user message's content is input_text or input_audio.")

    async def _added(self, item: dict[str, Any]) -> None:
        await self._wire.send("conversation.item.added", item=item, previous_item_id=self.last_item)
        await self._wire.send("conversation.item.done", item=item, previous_item_id=self.last_item)
        self.last_item = str(item["id"])


def decode(audio: Any, audio_format: str) -> bytes:
    """Base64 audio in the session's input format as 16-bit PCM at that format's rate."""
    if not isinstance(audio, str):
        raise InvalidAudio("audio is base64 text.")
    try:
        data = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidAudio("audio is not valid base64.") from None
    if audio_format == "g711_ulaw":
        return g711.ulaw_decode(data)
    if audio_format == "g711_alaw":
        return g711.alaw_decode(data)
    if len(data) % 2:
        raise InvalidAudio("pcm16 audio holds whole 16-bit samples (an even length).")
    return data
