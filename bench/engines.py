"""The embedded engines on this machine: recognizer real-time factor, model first token and
tokens/s, voice first audio and real-time factor, and a spoken question to the first audio byte
of a streamed REST answer. Adapter cost: the CPU a turn spends in the OpenAI-compatible adapters
against a loopback upstream, next to the same turn over in-process providers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.conftest import serve
from tests.fakes import fake_providers, make_wav

from bench.upstream import Latency, service_env, upstream_process
from voice_orchestrator.audio import decode
from voice_orchestrator.main import create_app
from voice_orchestrator.providers.base import ChatMessage
from voice_orchestrator.providers.factory import build_providers
from voice_orchestrator.providers.openai import OpenAIChatModel, create_client
from voice_orchestrator.settings import LLMSettings, Settings

QUESTION = Path(__file__).resolve().parents[1] / "tests" / "assets" / "question.wav"
URL = "/api/orchestrator/dialogue"


async def engines(runs: int) -> dict[str, Any]:
    settings = Settings(_env_file=None)
    start = time.perf_counter()
    providers = await build_providers(settings)
    load_s = time.perf_counter() - start
    try:
        audio = decode(QUESTION.read_bytes(), min_s=0.1, max_s=60, target_rate=16_000).audio
        stt_s, first_token, rates, tts_first, tts_rtf = [], [], [], [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            text = (await providers.stt.transcribe(audio)).text
            stt_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            tokens = 0
            first = 0.0
            async for _ in providers.llm.stream([ChatMessage("user", text)]):
                tokens += 1
                first = first or time.perf_counter() - t0
            total = time.perf_counter() - t0
            first_token.append(first)
            rates.append((tokens - 1) / max(1e-6, total - first))
            t0 = time.perf_counter()
            spoken = 0.0
            async for chunk in providers.tts.synthesize("The capital of France is Paris."):
                tts_first.append(time.perf_counter() - t0) if not spoken else None
                spoken += chunk.duration_s
            tts_rtf.append((time.perf_counter() - t0) / spoken)
        app = create_app(settings, providers)
        firsts = []
        async with serve(app) as server, httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            body = QUESTION.read_bytes()
            for _ in range(runs):
                t0 = time.perf_counter()
                async with c.stream("POST", URL, params={"stream": "true"}, content=body,
                                    headers={"content-type": "audio/wav"}) as response:  # fmt: skip
                    async for chunk in response.aiter_raw():
                        if len(chunk) > 44:
                            firsts.append(time.perf_counter() - t0)
                            break
    finally:
        await providers.aclose()
    med = statistics.median
    return {
        "figure": "embedded_engines",
        "runs": runs,
        "load_s": round(load_s, 2),
        "stt_rtf": round(med(stt_s) / audio.duration_s, 3),
        "llm_first_token_ms": round(med(first_token) * 1000, 1),
        "llm_tokens_per_s": round(med(rates), 1),
        "tts_first_audio_ms": round(med(tts_first) * 1000, 1),
        "tts_rtf": round(med(tts_rtf), 3),
        "question_s": round(audio.duration_s, 2),
        "rest_stream_first_audio_byte_ms": round(med(firsts) * 1000, 1),
    }


async def adapter_cost(turns: int) -> dict[str, Any]:
    """CPU per turn of this process, in-process app, instant upstreams: scripted in-process
    providers against the real OpenAI adapters talking HTTP to a loopback upstream."""
    body = make_wav(1.0)
    headers = {"content-type": "audio/wav"}

    async def cpu_per_turn(settings: Settings, providers: Any) -> float:
        app = create_app(settings, providers)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for _ in range(20):
                    await client.post(URL, content=body, headers=headers)
                cpu = time.process_time()
                for _ in range(turns):
                    (await client.post(URL, content=body, headers=headers)).raise_for_status()
                return (time.process_time() - cpu) * 1000 / turns

    scripted = await cpu_per_turn(Settings(_env_file=None), fake_providers())
    with upstream_process(Latency()) as base:
        env = service_env(base)
        stage = {"provider": "openai", "base_url": base, "api_key": env["OPENAI_API_KEY"]}
        settings = Settings(_env_file=None, stt=stage, llm=stage, tts=stage)
        adapters = await cpu_per_turn(settings, None)
    typed, adapter = await llm_stream_cost(max(3, turns // 3))
    return {
        "figure": "adapter_cost",
        "turns": turns,
        "cpu_ms_per_turn_scripted": round(scripted, 2),
        "cpu_ms_per_turn_openai_adapters": round(adapters, 2),
        "adapter_share": round(1 - scripted / adapters, 2),
        "llm_reply_tokens": STREAM_WORDS * STREAM_SENTENCES,
        "llm_reply_cpu_ms_typed_sdk_stream": round(typed, 2),
        "llm_reply_cpu_ms_adapter": round(adapter, 2),
        "llm_reply_cpu_ratio": round(adapter / typed, 2),
        "note": "three upstream calls a turn through the openai SDK and httpx2; the upstream "
        "runs in another process and is not counted",
    }


STREAM_SENTENCES, STREAM_WORDS = 3, 20


async def llm_stream_cost(replies: int) -> tuple[float, float]:
    """CPU of this process per streamed reply of 60 tokens from the loopback upstream: the
    SDK's typed ``chat.completions.create`` (a pydantic model a chunk) against the adapter
    (the SDK's ``post`` with ``cast_to=object``)."""
    latency = Latency(sentences=STREAM_SENTENCES, words=STREAM_WORDS)
    messages = [ChatMessage("system", "Answer briefly."), ChatMessage("user", "Paris?")]
    with upstream_process(latency) as base:
        settings = LLMSettings(provider="openai", base_url=base, api_key="bench")
        client = create_client(settings)
        model = OpenAIChatModel(client, settings)
        payload: Any = [{"role": m.role, "content": m.content} for m in messages]

        async def typed() -> None:
            stream = await client.chat.completions.create(
                model=model.model, messages=payload, stream=True, max_tokens=settings.max_tokens
            )
            async for chunk in stream:
                assert chunk.choices[0].delta.content is not None

        async def adapter() -> None:
            async for _ in model.stream(messages):
                pass

        async def cpu_ms(reply: Callable[[], Awaitable[None]]) -> float:
            for _ in range(5):
                await reply()
            cpu = time.process_time()
            for _ in range(replies):
                await reply()
            return (time.process_time() - cpu) * 1000 / replies

        try:
            return await cpu_ms(typed), await cpu_ms(adapter)
        finally:
            await client.close()
