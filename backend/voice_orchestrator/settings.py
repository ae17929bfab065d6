"""Configuration from the environment (prefix ``ORCH_``, nesting ``__``) and ``.env``."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Your answers are spoken aloud, so reply in one to three "
    "short, plain sentences without lists, markup or emoji."
)


class StageSettings(BaseModel):
    """One pipeline stage: which provider runs it and how to reach it."""

    provider: str
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)


class STTSettings(StageSettings):
    provider: Literal["whisper", "openai"] = "whisper"
    language: str | None = None
    beam_size: int = Field(1, ge=1, le=10)


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
    min_audio_s: float = Field(0.5, ge=0)
    max_audio_s: float = Field(60.0, gt=0)
    max_upload_bytes: int = Field(26_214_400, ge=1024)
    # The whole request body must arrive within this time (a slow-loris upload is cut off).
    upload_timeout_s: float = Field(30.0, gt=0)
    # Answers longer than this are cut at the end of the sentence that passes it.
    max_output_s: float = Field(120.0, gt=0)

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
        if self.session_store != "memory" and not self.session_store.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("ORCH_SESSION_STORE must be 'memory' or a redis:// URL")
        for name in ("stt", "llm", "tts"):
            stage: StageSettings = getattr(self, name)
            if stage.provider != "openai":
                continue
            if stage.api_key is None:
                stage.api_key = self.openai_api_key
            if stage.base_url is None:
                stage.base_url = self.openai_base_url
            if stage.api_key is None and stage.base_url is None:
                upper = name.upper()
                raise ValueError(
                    f"ORCH_{upper}__PROVIDER=openai needs ORCH_{upper}__API_KEY or "
                    f"ORCH_{upper}__BASE_URL (or OPENAI_API_KEY / OPENAI_BASE_URL)"
                )
        return self
