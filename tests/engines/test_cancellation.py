"""A caller who goes away frees the embedded engine: the abandoned work stops at the engine's
next step, so the next request does not queue behind it. Asserted by counting what the real
model produced (``observe.Watched``), never by timing it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from voice_orchestrator.audio import Audio
from voice_orchestrator.providers.base import ChatMessage, Providers

from ..conftest import HANG_S
from .observe import Watched
from .test_engines import MAX_CLIP_WER, load_clip, reference
from .wer import wer

LONG_CLIP = "24_long_lovecraft_moon_53s_16k.wav"


async def test_stt_cancellation_frees_the_engine(
    engines: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling a transcription stops the decode after the 30-s window in progress instead of
    decoding the rest of the recording while the next request waits (barge-in and client
    disconnects rely on it). Whisper decodes one window per step: the long clip four times
    over is about 3.5 min, 8 windows when run to its end."""
    stt: Any = engines.stt  # the WhisperSTT, whose model is watched
    watched = Watched(stt._model, "transcribe", asyncio.get_running_loop())
    monkeypatch.setattr(stt, "_model", watched)
    clip = load_clip(LONG_CLIP)
    task = asyncio.create_task(engines.stt.transcribe(Audio(clip.pcm * 4, clip.sample_rate)))
    async with asyncio.timeout(HANG_S):
        await watched.first.wait()  # the first window is decoded
    watched.mark()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    name = "03_goforward_16k.wav"
    heard = await engines.stt.transcribe(load_clip(name))
    assert wer(reference(name), heard.text) <= MAX_CLIP_WER, heard.text

    abandoned, _ = watched.outputs
    assert not abandoned.exhausted
    before = {pull.item.seek for pull in abandoned.pulls if not pull.after_mark}
    after = {pull.item.seek for pull in abandoned.pulls if pull.after_mark} - before
    # At most the one window begun after the cancel, before the engine saw it; the window in
    # progress at the cancel counts as before.
    assert len(after) <= 1, sorted(after)


async def test_llm_cancellation_frees_the_engine(
    engines: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing a reply stops llama.cpp at its next token: the abandoned story is not generated
    to its end (up to 200 tokens) before the next request gets the engine."""
    llm: Any = engines.llm  # the LlamaChat, whose llama.cpp model is watched
    watched = Watched(llm._llm, "create_chat_completion", asyncio.get_running_loop())
    monkeypatch.setattr(llm, "_llm", watched)
    story = [ChatMessage("user", "Tell me a very long story about a dragon and a knight.")]
    stream = llm.stream(story)
    async for _ in stream:
        break
    await stream.aclose()
    reply = "".join([d async for d in llm.stream([ChatMessage("user", "Say hi.")])])

    abandoned, answered = watched.outputs
    assert not abandoned.exhausted
    assert answered.exhausted
    assert reply


async def test_tts_cancellation_frees_the_engine(
    engines: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing a synthesis stops Piper at its next sentence: the 40 abandoned sentences are not
    all synthesized before the next request gets the engine."""
    tts: Any = engines.tts  # the PiperTTS, whose voice is watched
    watched = Watched(tts._voice, "synthesize", asyncio.get_running_loop())
    monkeypatch.setattr(tts, "_voice", watched)
    long_text = " ".join(f"This is sentence number {i}." for i in range(40))
    stream = tts.synthesize(long_text)
    async for _ in stream:
        break
    await stream.aclose()
    chunks = [chunk async for chunk in tts.synthesize("Hello.")]

    abandoned, answered = watched.outputs
    assert not abandoned.exhausted
    assert len(abandoned.pulls) < 40
    assert answered.exhausted
    assert len(chunks) == 1


async def test_concurrent_turns_queue_on_the_engine(engines: Providers) -> None:
    """Two replies asked at once both complete: they take turns on the engine's one thread."""
    question = [ChatMessage("user", "What is two plus two?")]

    async def ask() -> str:
        return "".join([d async for d in engines.llm.stream(question)])

    replies = await asyncio.gather(ask(), ask())
    assert all(replies)


async def test_health(engines: Providers) -> None:
    for provider in (engines.stt, engines.llm, engines.tts):
        assert (await provider.health()).status == "healthy"
