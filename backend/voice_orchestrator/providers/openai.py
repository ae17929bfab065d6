"""Adapters for any OpenAI-compatible upstream (OpenAI, Groq, vLLM, Ollama, llama.cpp server,
speaches, Kokoro-FastAPI, LocalAI) over the official SDK.

SDK errors become domain errors here and nowhere else. The SDK's own retries are off: retries
happen in ``with_retries`` so that they honour the stage deadline and are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx2
import openai

from ..audio import Audio, encode_wav
from ..errors import (
    ProviderError,
    ProviderFailed,
    ProviderStage,
    ProviderTimeout,
    ProviderUnavailable,
)
from ..settings import LLMSettings, StageSettings, STTSettings, TTSSettings
from .base import ChatMessage, ProviderHealth, ToolCall, Transcript
from .retry import RetryHook, with_retries
from .tool_calls import ToolCallParts, message_json
from .tts_stream import AudioStreamDecoder, CutHook, SpeechBody

T = TypeVar("T")

DEFAULT_MODELS = {"stt": "whisper-1", "llm": "gpt-4o-mini", "tts": "gpt-4o-mini-tts"}
DEFAULT_VOICE = "alloy"
# Local servers that need no key still get one: the SDK refuses to build a client without.
NO_KEY = "no-key"
RETRYABLE_STATUSES = frozenset({408, 429})


def create_client(stage: StageSettings) -> openai.AsyncOpenAI:
    """One client per upstream; it owns a connection pool (closed by ``await client.close()``)."""
    key = stage.api_key.get_secret_value() if stage.api_key is not None else NO_KEY
    return openai.AsyncOpenAI(
        api_key=key or NO_KEY,
        base_url=stage.base_url,
        timeout=stage.timeout_s,
        max_retries=0,
    )


def _retry_after_s(headers: httpx2.Headers) -> float | None:
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


def convert_error(stage: ProviderStage, error: Exception) -> ProviderError:
    """Maps an SDK or transport failure to the domain error the contract names."""
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, openai.APITimeoutError | httpx2.TimeoutException | TimeoutError):
        return ProviderTimeout(stage, f"The {stage} service did not answer in time.")
    if isinstance(error, openai.APIConnectionError | httpx2.TransportError):
        return ProviderUnavailable(
            stage, f"The {stage} service could not be reached.", retryable=True
        )
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status in RETRYABLE_STATUSES or status >= 500:
            return ProviderUnavailable(
                stage,
                f"The {stage} service answered {status}.",
                retryable=True,
                retry_after_s=_retry_after_s(error.response.headers),
            )
        return ProviderFailed(stage, f"The {stage} service refused the request ({status}).")
    return ProviderFailed(stage, f"The {stage} service sent a response that could not be used.")


class _Stage:
    """Shared plumbing of the three adapters: the client, deadlines, retries, conversion."""

    name = "openai"

    def __init__(
        self,
        stage: ProviderStage,
        client: openai.AsyncOpenAI,
        settings: StageSettings,
        on_retry: RetryHook | None,
    ) -> None:
        self._stage: ProviderStage = stage
        self._client = client
        self._settings = settings
        self._on_retry = on_retry
        self._model = settings.model or DEFAULT_MODELS[stage]

    @property
    def model(self) -> str:
        return self._model

    async def _call(self, request: Callable[[float], Awaitable[T]], deadline: float) -> T:
        """One request with retries; ``request`` gets the seconds left as its timeout."""
        loop = asyncio.get_running_loop()

        async def attempt() -> T:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ProviderTimeout(
                    self._stage, f"The {self._stage} service did not answer in time."
                )
            try:
                return await request(remaining)
            except (openai.OpenAIError, httpx2.HTTPError, ValueError, TypeError) as e:
                raise convert_error(self._stage, e) from e

        return await with_retries(
            attempt,
            max_retries=self._settings.max_retries,
            deadline=deadline,
            on_retry=self._on_retry,
        )

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self._settings.timeout_s

    async def health(self) -> ProviderHealth:
        start = time.perf_counter()
        try:
            await self._client.models.retrieve(self._model, timeout=self._settings.timeout_s)
        except openai.NotFoundError:
            # Reachable and authorised, but the model is unknown there: a broken configuration.
            return ProviderHealth("unhealthy", _ms(start), f"model {self._model!r} not found")
        except (openai.OpenAIError, httpx2.HTTPError) as e:
            error = convert_error(self._stage, e)
            return ProviderHealth("unhealthy", _ms(start), error.message)
        return ProviderHealth("healthy", _ms(start))

    async def aclose(self) -> None:
        await self._client.close()


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


class OpenAISpeechToText(_Stage):
    """``audio.transcriptions.create`` on a WAV of the utterance."""

    sample_rate = 16_000

    def __init__(
        self, client: openai.AsyncOpenAI, settings: STTSettings, on_retry: RetryHook | None = None
    ) -> None:
        super().__init__("stt", client, settings, on_retry)
        self._language = settings.language

    async def transcribe(self, audio: Audio, *, language: str | None = None) -> Transcript:
        wav = encode_wav(audio)
        lang = language or self._language

        async def request(budget_s: float) -> Transcript:
            result: Any = await self._client.audio.transcriptions.create(
                model=self._model,
                file=("audio.wav", wav, "audio/wav"),
                response_format="json",
                timeout=budget_s,
                language=lang or openai.omit,
            )
            text = getattr(result, "text", None)
            if not isinstance(text, str):
                raise ProviderFailed("stt", "The stt service sent a response without text.")
            return Transcript(text.strip(), lang)

        return await self._call(request, self._deadline())


class OpenAIChatModel(_Stage):
    """``POST /chat/completions`` with ``stream: true``; retried only until the first delta.

    The request goes through the SDK's own ``post`` (auth, headers, status errors, SSE framing
    and in-stream error events are the SDK's) with ``cast_to=object``, so each chunk arrives as
    the decoded JSON. The typed ``chat.completions.create`` builds a pydantic model of every
    chunk: about 0.2 ms of CPU a token, most of a turn's CPU for a spoken-length reply
    (``make bench``, figure ``adapter_cost``).
    """

    def __init__(
        self, client: openai.AsyncOpenAI, settings: LLMSettings, on_retry: RetryHook | None = None
    ) -> None:
        super().__init__("llm", client, settings, on_retry)
        self._max_tokens = settings.max_tokens
        self._temperature = settings.temperature

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        deadline = self._deadline()
        body = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "max_tokens": self._max_tokens,
            "temperature": self._temperature,
        }

        async def request(budget_s: float) -> openai.AsyncStream[object]:
            return await self._client.post(
                "/chat/completions",
                body=body,
                cast_to=object,
                stream=True,
                stream_cls=openai.AsyncStream[object],
                options={"timeout": budget_s, "security": {"bearer_auth": True}},
            )

        response = await self._call(request, deadline)
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in response:
                    content = _delta_content(chunk)
                    if content:
                        yield content
        except TimeoutError as e:
            raise ProviderTimeout("llm", "The llm service did not finish in time.") from e
        except (openai.OpenAIError, httpx2.HTTPError, ValueError, TypeError, AttributeError) as e:
            raise convert_error("llm", e) from e
        finally:
            # Closing the SDK stream closes the HTTP response, which stops the upstream.
            await response.close()

    async def stream_with_tools(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, Any]]
    ) -> AsyncIterator[str | ToolCall]:
        """``stream`` with ``tools`` offered: text deltas as they come, then the tool calls the
        model asked for, reassembled from their streamed pieces, once the stream has ended."""
        deadline = self._deadline()
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [message_json(m) for m in messages],
            "stream": True,
            "max_tokens": self._max_tokens,
            "temperature": self._temperature,
        }
        if tools:
            body["tools"] = [dict(tool) for tool in tools]

        async def request(budget_s: float) -> openai.AsyncStream[object]:
            return await self._client.post(
                "/chat/completions",
                body=body,
                cast_to=object,
                stream=True,
                stream_cls=openai.AsyncStream[object],
                options={"timeout": budget_s, "security": {"bearer_auth": True}},
            )

        response = await self._call(request, deadline)
        calls = ToolCallParts()
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in response:
                    content = _delta_content(chunk)
                    if content:
                        yield content
                    calls.add(chunk)
        except TimeoutError as e:
            raise ProviderTimeout("llm", "The llm service did not finish in time.") from e
        except (openai.OpenAIError, httpx2.HTTPError, ValueError, TypeError, AttributeError) as e:
            raise convert_error("llm", e) from e
        finally:
            await response.close()
        for call in calls.complete():
            yield call


def _delta_content(chunk: object) -> str | None:
    """The text of a streamed chat chunk (None for chunks without any, such as a last chunk
    with usage only); raises ProviderFailed for a chunk of the wrong shape."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not isinstance(choices, list):
        raise ProviderFailed("llm", "The llm service sent a malformed chunk.")
    if not choices:
        return None
    first = choices[0]
    delta = first.get("delta") if isinstance(first, dict) else None
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else None


class OpenAITextToSpeech(_Stage):
    """``audio.speech.create`` with the body streamed: audio is handed on as it arrives (WAV by
    default, read at the rate its header states; or raw PCM at ``pcm_sample_rate``).

    The stage timeout bounds the wait for the first audio (retries included) and then each gap
    between reads, not the whole body. Retries happen only until the first audio is read, so
    nothing is ever spoken twice. A body cut off after that ends the sentence with what arrived:
    logged and counted through ``on_cut(stage, reason)``, not raised.
    """

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        settings: TTSSettings,
        on_retry: RetryHook | None = None,
        on_cut: CutHook | None = None,
    ) -> None:
        super().__init__("tts", client, settings, on_retry)
        self._voice = settings.voice or DEFAULT_VOICE
        self._format = settings.response_format
        self._pcm_rate = settings.pcm_sample_rate
        self._on_cut = on_cut

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[Audio]:
        async def request(budget_s: float) -> SpeechBody:
            return await self._open(text, voice or self._voice, budget_s)

        body = await self._call(request, self._deadline())
        try:
            for audio in body.first:
                yield audio
            async with contextlib.aclosing(
                body.rest(self._settings.timeout_s, self._on_cut)
            ) as rest:
                async for audio in rest:
                    yield audio
        finally:
            await body.aclose()

    async def _open(self, text: str, voice: str, budget_s: float) -> SpeechBody:
        """Sends the request and reads until the first audio (or the end of a short body)."""
        stack = contextlib.AsyncExitStack()
        try:
            async with asyncio.timeout(budget_s):
                response = await stack.enter_async_context(
                    self._client.audio.speech.with_streaming_response.create(
                        model=self._model,
                        voice=voice,
                        input=text,
                        response_format=self._format,
                        # Per read: the gaps after the first audio get the whole stage timeout.
                        timeout=httpx2.Timeout(budget_s, read=self._settings.timeout_s),
                    )
                )
                decoder = AudioStreamDecoder(self._format, self._pcm_rate)
                body = SpeechBody(stack, response.iter_bytes(), decoder)
                await body.read_first()
                return body
        except BaseException as e:
            await stack.aclose()
            if isinstance(e, TimeoutError):
                raise ProviderTimeout("tts", "The tts service did not answer in time.") from e
            if isinstance(e, ValueError):
                raise ProviderFailed(
                    "tts", "The tts service sent audio that could not be decoded."
                ) from e
            raise
