"""Configuration from the environment (prefix ``ORCH_``, nesting ``__``) and ``.env``."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .languages import whisper_language

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Your answers are spoken aloud, so reply in one to three "
    "short, plain sentences without lists, markup or emoji."
)


def _none_if_blank(value: object) -> object:
    """An empty variable (``OPENAI_API_KEY=``) counts as unset, as it would for a shell user."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


class FallbackSettings(BaseModel):
    """A second provider for a stage, serving the calls its primary fails retryably."""

    provider: Literal["whisper", "llama", "piper", "openai"]
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None


# The providers each stage can run; a fallback must be one of its stage's.
STAGE_PROVIDERS = {
    "stt": ("whisper", "openai"),
    "llm": ("llama", "openai"),
    "tts": ("piper", "openai"),
}


class StageSettings(BaseModel):
    """One pipeline stage: which provider runs it and how to reach it."""

    provider: str
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    fallback: FallbackSettings | None = None

    @field_validator("api_key", "base_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return _none_if_blank(value)


class STTSettings(StageSettings):
    provider: Literal["whisper", "openai"] = "whisper"
    language: str | None = None
    beam_size: int = Field(1, ge=1, le=10)

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        known = whisper_language(value)
        if known is None:
            raise ValueError(
                f"ORCH_STT__LANGUAGE={value!r} is not a language code the speech recognizer "
                "knows (ISO 639-1, e.g. en or fr)"
            )
        return known


class LLMSettings(StageSettings):
    provider: Literal["llama", "openai"] = "llama"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_tokens: int = Field(200, ge=1, le=8192)
    temperature: float = Field(0.2, ge=0, le=2)


class TTSSettings(StageSettings):
    provider: Literal["piper", "openai"] = "piper"
    voice: str | None = None
    # What an OpenAI-compatible upstream is asked for; "pcm" needs pcm_sample_rate.
    response_format: Literal["wav", "pcm"] = "wav"
    pcm_sample_rate: int = Field(24_000, ge=8_000, le=192_000)
    # The first chunk of a reply may end at a clause mark preceded by this many words, so that
    # speech starts before a long first sentence ends; None or 0: whole sentences only.
    first_clause_min_words: int | None = Field(None, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ORCH_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    stt: STTSettings = STTSettings()
    llm: LLMSettings = LLMSettings()
    tts: TTSSettings = TTSSettings()

    # Fallbacks for every stage that uses the ``openai`` provider.
    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL")

    max_concurrency: int = Field(5, ge=1, le=1000)
    queue_timeout_s: float = Field(0.0, ge=0)
    # "memory" (per process) or a redis:// URL: the slots and rate limits then count across
    # every instance sharing that Redis.
    admission_store: str = "memory"
    # A slot held in Redis is a lease renewed while held: a dead instance's slots come back
    # within this time.
    slot_lease_s: float = Field(15.0, ge=1)
    # Requests per API key (per client address without keys), e.g. "60/minute"; empty: none.
    rate_limit: str = ""
    # A primary provider that keeps failing is skipped this long before it is tried again.
    breaker_cooldown_s: float = Field(30.0, gt=0)
    # On SIGTERM: how long running turns may finish before the process exits.
    drain_timeout_s: float = Field(30.0, ge=0)
    min_audio_s: float = Field(0.5, ge=0)
    max_audio_s: float = Field(60.0, gt=0)
    max_upload_bytes: int = Field(26_214_400, ge=1024)
    # The whole request body must arrive within this time (a slow-loris upload is cut off).
    upload_timeout_s: float = Field(30.0, gt=0)
    # Answers longer than this are cut at the end of the sentence that passes it.
    max_output_s: float = Field(120.0, gt=0)
    # A connection must send its complete request headers within this time (slow loris).
    header_timeout_s: float = Field(10.0, gt=0)
    # Open connections per process, answered 503 beyond; unset: half the file-descriptor limit.
    max_connections: int | None = Field(None, ge=1)

    api_keys: Annotated[list[SecretStr], NoDecode] = []
    # Browser origins allowed to call the API from their pages; none by default.
    cors_origins: Annotated[list[str], NoDecode] = []
    session_store: str = "memory"
    session_ttl_s: float = Field(3600.0, gt=0)
    max_stored_sessions: int = Field(10_000, ge=1)
    max_history_turns: int = Field(10, ge=0)
    redact: bool = True

    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    status_slow_ms: float = Field(1000.0, gt=0)
    status_timeout_s: float = Field(3.0, gt=0)
    status_cache_s: float = Field(5.0, ge=0)

    vad_silence_ms: int = Field(600, ge=100)
    # Speech must last this long to count: shorter sounds (a cough) neither start a turn nor
    # interrupt the assistant.
    vad_start_ms: int = Field(200, ge=20, le=2000)
    playback_lead_ms: int = Field(250, ge=0)
    max_sessions: int = Field(20, ge=1)
    # With API keys, the sockets one key may hold; default: half of ORCH_MAX_SESSIONS.
    max_sessions_per_key: int | None = Field(None, ge=1)
    # A socket that carries nothing from its client this long is closed.
    ws_idle_timeout_s: float = Field(60.0, gt=0)
    # A transcript is cut to this before it reaches the model; a session's history is bounded
    # in characters as well as in turns.
    max_transcript_chars: int = Field(2000, ge=1)
    max_history_chars: int = Field(20_000, ge=1)

    @property
    def sessions_per_key(self) -> int:
        if self.max_sessions_per_key is not None:
            return self.max_sessions_per_key
        return max(1, self.max_sessions // 2)

    # Phone calls. With the auth token set, Twilio webhooks must carry a valid signature, and
    # it also signs the stream tokens (so every instance can verify them).
    twilio_auth_token: SecretStr | None = None
    # The address callers' providers reach this service at (https://host[/prefix]); the
    # request's own address when unset.
    public_url: str | None = None
    # Spoken first on every call; empty: none.
    telephony_greeting: str = "Hello! How can I help you?"

    # Tools the assistant may call (CONTRACT.md "Tools"); none without a file.
    tools_file: str | None = None
    max_tool_rounds: int = Field(3, ge=1, le=20)
    # Spoken while a tool call takes longer than this.
    tool_filler_ms: int = Field(700, ge=0)
    tool_filler: str = "One moment."
    # A tool's answer is cut to this many characters before the model sees it.
    max_tool_result_chars: int = Field(4000, ge=100, le=1_000_000)

    @field_validator("openai_api_key", "openai_base_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return _none_if_blank(value)

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min_audio_s >= self.max_audio_s:
            raise ValueError("ORCH_MIN_AUDIO_S must be below ORCH_MAX_AUDIO_S")
        for name, store in (("SESSION", self.session_store), ("ADMISSION", self.admission_store)):
            if store != "memory" and not store.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError(f"ORCH_{name}_STORE must be 'memory' or a redis:// URL")
        if self.rate_limit:
            from .pipeline.rate_limits import parse_rate

            parse_rate(self.rate_limit)  # raises ValueError with the accepted form
        for name in ("stt", "llm", "tts"):
            stage: StageSettings = getattr(self, name)
            upper = name.upper()
            if stage.provider == "openai":
                self._upstream(stage, f"ORCH_{upper}")
            fallback = stage.fallback
            if fallback is None:
                continue
            if fallback.provider not in STAGE_PROVIDERS[name]:
                choices = " or ".join(STAGE_PROVIDERS[name])
                raise ValueError(f"ORCH_{upper}__FALLBACK__PROVIDER must be {choices}")
            if fallback.provider == "openai":
                self._upstream(fallback, f"ORCH_{upper}__FALLBACK")
        return self

    def _upstream(self, stage: StageSettings | FallbackSettings, prefix: str) -> None:
        """Fills an OpenAI-compatible stage's key and URL from OPENAI_*; one must be set."""
        if stage.api_key is None:
            stage.api_key = self.openai_api_key
        if stage.base_url is None:
            stage.base_url = self.openai_base_url
        if stage.api_key is None and stage.base_url is None:
            raise ValueError(
                f"{prefix}__PROVIDER=openai needs {prefix}__API_KEY or "
                f"{prefix}__BASE_URL (or OPENAI_API_KEY / OPENAI_BASE_URL)"
            )
