"""The session: ``session.update`` in either dialect's shape, and the effective configuration
that ``session.created`` and ``session.updated`` report.

What the cascaded pipeline honours: instructions (the system prompt), the voice, turn detection
(server VAD with its silence duration and whether it answers by itself, or none: manual
commits), the audio formats (pcm16 at 24 kHz, G.711 μ-law and A-law at 8 kHz), the output
modalities (audio with its transcript, or text only), the input transcription's language, and
the client's function tools (``calls``), which the model is offered when it can call tools (the
embedded model cannot: the session then reports no tools).
Everything else is accepted, echoed where the protocol has a field for it, and logged as
without effect; a value that cannot be honoured is reported at its effective value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from ...errors import InvalidRequest
from ...pipeline.conversation import ConversationOptions
from ...settings import Settings
from .wire import Dialect, ga_format

logger = logging.getLogger(__name__)

RATES = {"pcm16": 24_000, "g711_ulaw": 8_000, "g711_alaw": 8_000}
_GA_FORMATS = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
# OpenAI's own voices: only an OpenAI-compatible synthesizer knows them.
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
)
_HONOURED = {
    "type", "model", "instructions", "voice", "modalities", "output_modalities", "audio",
    "input_audio_format", "output_audio_format", "turn_detection", "input_audio_transcription",
    "tools", "tool_choice",
}  # fmt: skip


@dataclass(slots=True)
class SessionConfig:
    id: str
    model: str
    instructions: str
    default_voice: str
    voice: str  # as reported
    tts_voice: str | None = None  # as the synthesizer gets it (None: its own)
    speak: bool = True
    input_format: str = "pcm16"
    output_format: str = "pcm16"
    turn_detection: dict[str, Any] | None = None
    transcription: dict[str, Any] | None = None
    tools: list[Any] = field(default_factory=list)
    tool_choice: Any = "auto"
    extra: dict[str, Any] = field(default_factory=dict)  # accepted without effect

    @classmethod
    def initial(cls, session_id: str, model: str, settings: Settings) -> SessionConfig:
        voice = settings.tts.voice or "default"
        return cls(
            id=session_id,
            model=model,
            instructions=settings.llm.system_prompt,
            default_voice=voice,
            voice=voice,
            turn_detection=_server_vad({}, settings),
        )

    @property
    def language(self) -> str | None:
        language = (self.transcription or {}).get("language")
        return str(language) if language else None

    def options(self, settings: Settings) -> ConversationOptions:
        detection = self.turn_detection
        return ConversationOptions(
            input_rate=RATES[self.input_format],
            output_rate=RATES[self.output_format],
            playback_lead_ms=settings.playback_lead_ms,
            server_vad=detection is not None,
            auto_respond=bool(detection and detection.get("create_response", True)),
            speak=self.speak,
            vad_start_ms=settings.vad_start_ms,
            vad_silence_ms=int(
                (detection or {}).get("silence_duration_ms", settings.vad_silence_ms)
            ),
            min_audio_s=settings.min_audio_s,
            max_audio_s=settings.max_audio_s,
        )

    def updated(self, session: dict[str, Any], settings: Settings) -> SessionConfig:
        """The configuration after a ``session.update`` (GA or beta shape); InvalidRequest on
        a bad value."""
        new = replace(self)
        new.tools = list(self.tools)
        new.extra = dict(self.extra)
        if "instructions" in session:
            new.instructions = str(session["instructions"] or "")
        modalities = session.get("output_modalities", session.get("modalities"))
        if modalities is not None:
            if not isinstance(modalities, list) or not set(modalities) <= {"text", "audio"}:
                raise InvalidRequest("Output modalities are text and/or audio.")
            new.speak = "audio" in modalities
        audio = session.get("audio") or {}
        given_in = audio.get("input") or {}
        given_out = audio.get("output") or {}
        if "input_audio_format" in session:
            new.input_format = _format(session["input_audio_format"])
        if "format" in given_in:
            new.input_format = _format(given_in["format"])
        if "output_audio_format" in session:
            new.output_format = _format(session["output_audio_format"])
        if "format" in given_out:
            new.output_format = _format(given_out["format"])
        voice = given_out.get("voice", session.get("voice"))
        if voice is not None:
            new.voice, new.tts_voice = _voice(voice, settings, new.default_voice)
        for source in (session, given_in):
            if "turn_detection" in source:
                detection = source["turn_detection"]
                new.turn_detection = None if detection is None else _server_vad(detection, settings)
        for source, key in ((session, "input_audio_transcription"), (given_in, "transcription")):
            if key in source:
                transcription = source[key]
                new.transcription = dict(transcription) if transcription else None
        if "tools" in session:
            new.tools = list(session["tools"] or [])
        if "tool_choice" in session:
            new.tool_choice = session["tool_choice"]
        ignored = {k: v for k, v in session.items() if k not in _HONOURED}
        if "noise_reduction" in given_in:
            ignored["audio.input.noise_reduction"] = given_in["noise_reduction"]
        if "speed" in given_out:
            ignored["audio.output.speed"] = given_out["speed"]
        new.extra.update(ignored)
        if ignored:
            logger.info("realtime session fields without effect", extra={"fields": sorted(ignored)})
        return new

    def assign(self, other: SessionConfig) -> None:
        """Takes ``other``'s values (the modules of a connection share this object)."""
        for name in self.__slots__:
            setattr(self, name, getattr(other, name))

    def describe(
        self, dialect: Dialect, stt_model: str, *, tools_supported: bool = True
    ) -> dict[str, Any]:
        """The effective session, shaped for ``session.created`` / ``session.updated``; no
        tools when the language model cannot call any."""
        tools = self.tools if tools_supported else []
        transcription = None
        if self.transcription is not None:
            transcription = {**self.transcription, "model": stt_model}
        detection = self.turn_detection
        if dialect == "beta":
            return {
                "id": self.id,
                "object": "realtime.session",
                "model": self.model,
                "modalities": ["text", "audio"] if self.speak else ["text"],
                "instructions": self.instructions,
                "voice": self.voice,
                "input_audio_format": self.input_format,
                "output_audio_format": self.output_format,
                "input_audio_transcription": transcription,
                "turn_detection": detection,
                "tools": tools,
                "tool_choice": self.tool_choice if isinstance(self.tool_choice, str) else "auto",
                **{k: v for k, v in self.extra.items() if k in _BETA_ECHOED},
            }
        return {
            "type": "realtime",
            "id": self.id,
            "object": "realtime.session",
            "model": self.model,
            "output_modalities": ["audio"] if self.speak else ["text"],
            "instructions": self.instructions,
            "audio": {
                "input": {
                    "format": ga_format(self.input_format),
                    "transcription": transcription,
                    "turn_detection": detection,
                    "noise_reduction": None,
                },
                "output": {"format": ga_format(self.output_format), "voice": self.voice},
            },
            "tools": tools,
            "tool_choice": self.tool_choice,
            **{k: v for k, v in self.extra.items() if k in _GA_ECHOED},
        }


_BETA_ECHOED = {"temperature", "max_response_output_tokens"}
_GA_ECHOED = {"max_output_tokens"}


def _format(value: Any) -> str:
    name = value.get("type") if isinstance(value, dict) else value
    name = _GA_FORMATS.get(str(name), str(name))
    if name not in RATES:
        raise InvalidRequest(
            "Audio formats are pcm16 (audio/pcm, 24 kHz), g711_ulaw (audio/pcmu) or g711_alaw "
            "(audio/pcma)."
        )
    if isinstance(value, dict) and name == "pcm16" and value.get("rate", 24_000) != 24_000:
        raise InvalidRequest("audio/pcm is 24 kHz only.")
    return name


def _voice(value: Any, settings: Settings, default: str) -> tuple[str, str | None]:
    """The voice to report and the one the synthesizer gets."""
    name = str(value.get("id", "")) if isinstance(value, dict) else str(value)
    if not name:
        raise InvalidRequest("A voice is a name or {id}.")
    if settings.tts.provider != "openai" and name in OPENAI_VOICES:
        return default, None  # the engine's own voice stands in for OpenAI's
    return name, name


def _server_vad(given: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Server VAD as it runs: semantic VAD is served by the same detector."""
    if not isinstance(given, dict) or given.get("type", "server_vad") not in (
        "server_vad",
        "semantic_vad",
    ):
        raise InvalidRequest("turn_detection is server_vad, semantic_vad or null.")
    silence = given.get("silence_duration_ms", settings.vad_silence_ms)
    if not isinstance(silence, int) or not 100 <= silence <= 10_000:
        raise InvalidRequest("silence_duration_ms is 100 to 10000.")
    return {
        "type": "server_vad",
        "threshold": float(given.get("threshold", 0.5)),
        "prefix_padding_ms": int(given.get("prefix_padding_ms", 300)),
        "silence_duration_ms": silence,
        "create_response": bool(given.get("create_response", True)),
        "interrupt_response": True,
    }
