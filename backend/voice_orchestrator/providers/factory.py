"""Builds the configured providers. Embedded engines are imported only when chosen."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import openai

from ..settings import LLMSettings, Settings, StageSettings, STTSettings, TTSSettings
from .base import ChatModel, Providers, SpeechToText, TextToSpeech
from .fallback import (
    Breaker,
    FallbackChatModel,
    FallbackSpeechToText,
    FallbackTextToSpeech,
    ServeHook,
)
from .openai import OpenAIChatModel, OpenAISpeechToText, OpenAITextToSpeech, create_client
from .retry import RetryHook
from .tts_stream import CutHook

logger = logging.getLogger(__name__)

P = TypeVar("P", SpeechToText, ChatModel, TextToSpeech)
S = TypeVar("S", bound=StageSettings)


class _Clients:
    """One AsyncOpenAI per distinct upstream (base URL and key), shared by the stages on it,
    and the hooks the adapters report to."""

    def __init__(self, on_cut: CutHook | None = None) -> None:
        self.on_cut = on_cut
        self._clients: dict[tuple[str | None, str | None], openai.AsyncOpenAI] = {}

    def get(self, stage: StageSettings) -> openai.AsyncOpenAI:
        key = stage.api_key.get_secret_value() if stage.api_key else None
        upstream = (stage.base_url, key)
        if upstream not in self._clients:
            self._clients[upstream] = create_client(stage)
        return self._clients[upstream]


def fallback_stage(stage: S) -> S | None:
    """The stage's settings as its fallback provider sees them: the fallback's provider, URL,
    key and model (the stage's model when unset and the provider is the same), the stage's
    timeout, retries and other options."""
    fallback = stage.fallback
    if fallback is None:
        return None
    same = fallback.provider == stage.provider
    update = {
        "provider": fallback.provider,
        "base_url": fallback.base_url,
        "api_key": fallback.api_key,
        "model": fallback.model or (stage.model if same else None),
        "fallback": None,
    }
    if not same and "voice" in type(stage).model_fields:
        update["voice"] = None  # voices are named per provider
    return stage.model_copy(update=update)


async def _stt(stage: STTSettings, clients: _Clients, on_retry: RetryHook | None) -> SpeechToText:
    if stage.provider == "openai":
        return OpenAISpeechToText(clients.get(stage), stage, on_retry)
    from .whisper import WhisperSTT

    return await WhisperSTT.load(stage)


async def _llm(stage: LLMSettings, clients: _Clients, on_retry: RetryHook | None) -> ChatModel:
    if stage.provider == "openai":
        return OpenAIChatModel(clients.get(stage), stage, on_retry)
    from .llama import LlamaChat

    return await LlamaChat.load(stage)


async def _tts(stage: TTSSettings, clients: _Clients, on_retry: RetryHook | None) -> TextToSpeech:
    if stage.provider == "openai":
        return OpenAITextToSpeech(clients.get(stage), stage, on_retry, on_cut=clients.on_cut)
    from .piper import PiperTTS

    return await PiperTTS.load(stage)


async def _with_fallback(
    stage: S,
    build: Callable[[S, _Clients, RetryHook | None], Awaitable[P]],
    wrap: Callable[[P, P, Breaker, ServeHook | None], P],
    cooldown_s: float,
    clients: _Clients,
    on_retry: RetryHook | None,
    on_serve: ServeHook | None,
) -> P:
    second = fallback_stage(stage)
    if second is None:
        return await build(stage, clients, on_retry)
    built = await asyncio.gather(
        build(stage, clients, on_retry), build(second, clients, on_retry), return_exceptions=True
    )
    primary, fallback = built
    # Whichever one loaded is not left open when the other failed.
    if isinstance(primary, BaseException):
        if not isinstance(fallback, BaseException):
            await fallback.aclose()
        raise primary
    if isinstance(fallback, BaseException):
        await primary.aclose()
        raise fallback
    breaker = Breaker(cooldown_s=cooldown_s)
    return wrap(primary, fallback, breaker, on_serve)


async def build_providers(
    settings: Settings,
    on_retry: RetryHook | None = None,
    on_serve: ServeHook | None = None,
    on_cut: CutHook | None = None,
) -> Providers:
    """Creates clients and loads engines (concurrently: each engine loads in its own thread).
    A stage with a fallback gets both, behind a circuit breaker; ``on_serve(stage, role)``
    hears which one served each call, ``on_cut(stage, reason)`` of streamed bodies cut short."""
    clients = _Clients(on_cut)
    logger.info(
        "loading providers",
        extra={
            "stt": settings.stt.provider,
            "llm": settings.llm.provider,
            "tts": settings.tts.provider,
        },
    )
    cooldown = settings.breaker_cooldown_s
    rest = (cooldown, clients, on_retry, on_serve)
    stt, llm, tts = await asyncio.gather(
        _with_fallback(settings.stt, _stt, FallbackSpeechToText, *rest),
        _with_fallback(settings.llm, _llm, FallbackChatModel, *rest),
        _with_fallback(settings.tts, _tts, FallbackTextToSpeech, *rest),
    )
    return Providers(stt=stt, llm=llm, tts=tts)
