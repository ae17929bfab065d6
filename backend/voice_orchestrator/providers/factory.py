"""Builds the configured providers. Embedded engines are imported only when chosen."""

from __future__ import annotations

import asyncio
import logging

import openai

from ..settings import Settings, StageSettings
from .base import ChatModel, Providers, SpeechToText, TextToSpeech
from .openai import OpenAIChatModel, OpenAISpeechToText, OpenAITextToSpeech, create_client
from .retry import RetryHook

logger = logging.getLogger(__name__)


class _Clients:
    """One AsyncOpenAI per distinct upstream (base URL and key), shared by the stages on it."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str | None, str | None], openai.AsyncOpenAI] = {}

    def get(self, stage: StageSettings) -> openai.AsyncOpenAI:
        key = stage.api_key.get_secret_value() if stage.api_key else None
        upstream = (stage.base_url, key)
        if upstream not in self._clients:
            self._clients[upstream] = create_client(stage)
        return self._clients[upstream]


async def _stt(settings: Settings, clients: _Clients, on_retry: RetryHook | None) -> SpeechToText:
    if settings.stt.provider == "openai":
        return OpenAISpeechToText(clients.get(settings.stt), settings.stt, on_retry)
    from .whisper import WhisperSTT

    return await WhisperSTT.load(settings.stt)


async def _llm(settings: Settings, clients: _Clients, on_retry: RetryHook | None) -> ChatModel:
    if settings.llm.provider == "openai":
        return OpenAIChatModel(clients.get(settings.llm), settings.llm, on_retry)
    from .llama import LlamaChat

    return await LlamaChat.load(settings.llm)


async def _tts(settings: Settings, clients: _Clients, on_retry: RetryHook | None) -> TextToSpeech:
    if settings.tts.provider == "openai":
        return OpenAITextToSpeech(clients.get(settings.tts), settings.tts, on_retry)
    from .piper import PiperTTS

    return await PiperTTS.load(settings.tts)


async def build_providers(settings: Settings, on_retry: RetryHook | None = None) -> Providers:
    """Creates clients and loads engines (concurrently: each engine loads in its own thread)."""
    clients = _Clients()
    logger.info(
        "loading providers",
        extra={
            "stt": settings.stt.provider,
            "llm": settings.llm.provider,
            "tts": settings.tts.provider,
        },
    )
    stt, llm, tts = await asyncio.gather(
        _stt(settings, clients, on_retry),
        _llm(settings, clients, on_retry),
        _tts(settings, clients, on_retry),
    )
    return Providers(stt=stt, llm=llm, tts=tts)
