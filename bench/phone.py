"""Phone figures (Twilio Media Streams): the end of the caller's speech to the first answer frame,
and barge-in speech start to ``clear``, beside the same turn on our WebSocket.

Both run against a real uvicorn with the scripted providers of ``bench.run``. The caller's
speech (``tests/assets/question.wav``) and the silence after it are sent at real-time pace in
Twilio's 20-ms μ-law frames, so the end of the turn is found by the voice activity detector as
on a real call; the WebSocket figure sends the same audio on the same schedule as 16-kHz PCM.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Awaitable, Callable
from typing import Any
from xml.etree.ElementTree import fromstring

import httpx
import numpy as np
import soxr
from tests.e2e.conftest import LiveServer, serve
from tests.fakes import FakeTTS, fake_providers
from tests.telephony_clients import TwilioCall, mulaw_frames, speech_pcm
from websockets.asyncio.client import ClientConnection, connect

from bench.realtime import QUESTION, first_voiced_offset
from voice_orchestrator.g711 import ulaw_decode, ulaw_encode
from voice_orchestrator.main import create_app
from voice_orchestrator.pipeline.vad import (
    SAMPLE_RATE,
    Segmenter,
    SpeechStopped,
    WebRtcClassifier,
)
from voice_orchestrator.settings import Settings

VOICE_PATH = "/api/telephony/twilio/voice"
STREAM_PATH = "/api/telephony/twilio/stream"
WS_PATH = "/api/v1/orchestrator/ws"
FRAME_S = 0.02
SILENCE_S = 3.0  # sent after the question: enough for any answer to begin


def turn_end_s(frames: list[bytes], settings: Settings, rate: int = SAMPLE_RATE) -> float:
    """When the service's voice activity detector ends the first utterance (after
    ORCH_VAD_SILENCE_MS of silence), as the send time of the 20-ms PCM frame at ``rate`` that
    ends it. Audio at another rate than 16 kHz goes through μ-law and the core's streaming
    resampler first, as on a call."""
    segmenter = Segmenter(
        WebRtcClassifier(), start_ms=settings.vad_start_ms, silence_ms=settings.vad_silence_ms
    )
    resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="int16")
    for index, frame in enumerate(frames):
        if rate != SAMPLE_RATE:
            samples = np.frombuffer(ulaw_decode(ulaw_encode(frame)), dtype=np.int16)
            frame = resampler.resample_chunk(samples).tobytes()
        if any(isinstance(event, SpeechStopped) for event in segmenter.push(frame)):
            return index * FRAME_S
    raise ValueError("the utterance does not end in the clip")


def pcm_frames(pcm: bytes, rate: int) -> list[bytes]:
    size = int(rate * FRAME_S) * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


async def paced(frames: list[Any], send: Callable[[Any], Awaitable[None]]) -> None:
    """Sends one frame every 20 ms on an absolute schedule, as a phone line delivers them."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index, frame in enumerate(frames):
        await send(frame)
        delay = start + (index + 1) * FRAME_S - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


async def open_call(server: LiveServer, ws: ClientConnection, call: TwilioCall) -> None:
    """The webhook, then ``connected`` and ``start`` with the TwiML's parameters."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        twiml = (await http.post(VOICE_PATH, data=call.webhook_form())).text
    tags = fromstring(twiml).iter("Parameter")
    parameters = {tag.get("name", ""): tag.get("value", "") for tag in tags}
    await ws.send(json.dumps(call.connected()))
    await ws.send(json.dumps(call.start(parameters)))


def question_frames(call: TwilioCall, silence_s: float) -> list[str]:
    pcm = speech_pcm(QUESTION, 8000) + bytes(int(silence_s * 8000) * 2)
    return [json.dumps(call.media(frame)) for frame in mulaw_frames(pcm)]


async def until_event(ws: ClientConnection, name: str) -> float:
    loop = asyncio.get_running_loop()
    while json.loads(await ws.recv())["event"] != name:
        pass
    return loop.time()


async def phone_first_audio(
    runs: int, scripted: Callable[[], Any], after_turn_limit_ms: float
) -> dict[str, Any]:
    """From the end of the caller's turn (as the detector decides it) to the first ``media``
    frame of the answer, minus what the scripted stages need after it, and the same on the
    WebSocket with the same audio on the same schedule."""
    settings = Settings(_env_file=None, max_concurrency=1000, telephony_greeting="")
    silence_16k = bytes(int(SILENCE_S * SAMPLE_RATE) * 2)
    pcm_8k = speech_pcm(QUESTION, 8000) + bytes(int(SILENCE_S * 8000) * 2)
    pcm_16k = speech_pcm(QUESTION, SAMPLE_RATE) + silence_16k
    phone_end_s = turn_end_s(pcm_frames(pcm_8k, 8000), settings, 8000)
    chunks = pcm_frames(pcm_16k, SAMPLE_RATE)
    socket_end_s = turn_end_s(chunks, settings)
    phone: list[float] = []
    socket: list[float] = []
    async with serve(create_app(settings, scripted())) as server:
        base = server.url.replace("http://", "ws://")
        loop = asyncio.get_running_loop()
        for _ in range(runs):
            call = TwilioCall()
            async with connect(base + STREAM_PATH, max_size=2**24) as ws:
                await open_call(server, ws, call)
                frames = [json.dumps(call.media(frame)) for frame in mulaw_frames(pcm_8k)]
                start = loop.time()
                sender = asyncio.create_task(paced(frames, ws.send))
                first = await until_event(ws, "media")
                phone.append((first - start - phone_end_s) * 1000)
                sender.cancel()
                await asyncio.wait({sender})
            async with connect(base + WS_PATH, max_size=2**24) as ws:
                start = loop.time()
                sender = asyncio.create_task(paced(chunks, ws.send))
                while isinstance(await ws.recv(), str):
                    pass
                socket.append((loop.time() - start - socket_end_s) * 1000)
                sender.cancel()
                await asyncio.wait({sender})
    phone_ms, socket_ms = statistics.median(phone), statistics.median(socket)
    return {
        "figure": "phone_first_audio",
        "runs": runs,
        "vad_silence_ms": settings.vad_silence_ms,
        "after_turn_limit_ms": after_turn_limit_ms,
        "speech_end_to_first_media_ms": round(phone_ms + settings.vad_silence_ms, 1),
        "turn_end_to_first_media_over_limit_ms": round(phone_ms - after_turn_limit_ms, 1),
        "websocket_turn_end_to_first_audio_over_limit_ms": round(
            socket_ms - after_turn_limit_ms, 1
        ),
        "note": "speech end is where the detector's silence began; transcription runs during "
        "that silence (from its first 200 ms), so the limit after the turn ends is the reply's "
        "first sentence and its speech",
    }


async def phone_barge_in(runs: int) -> dict[str, Any]:
    """From the first voiced frame of speech over the answer to ``clear``, and to the last
    ``media`` frame before it. The detector wants 80 % of ``ORCH_VAD_START_MS`` voiced."""
    pcm_8k = speech_pcm(QUESTION, 8000)
    voiced_at_s = first_voiced_offset(speech_pcm(QUESTION, SAMPLE_RATE)) / 2 / SAMPLE_RATE
    to_clear: list[float] = []
    to_last: list[float] = []
    settings = Settings(_env_file=None, telephony_greeting="")
    providers = fake_providers(tts=FakeTTS(seconds_per_char=0.2))  # long answers
    async with serve(create_app(settings, providers)) as server:
        url = server.url.replace("http://", "ws://") + STREAM_PATH
        loop = asyncio.get_running_loop()
        for _ in range(runs):
            call = TwilioCall()
            async with connect(url, max_size=2**24) as ws:
                await open_call(server, ws, call)
                for message in question_frames(call, 1.0):
                    await ws.send(message)
                await until_event(ws, "media")
                await asyncio.sleep(0.5)  # the answer plays
                frames = [json.dumps(call.media(f)) for f in mulaw_frames(pcm_8k)]
                started = loop.time()
                sender = asyncio.create_task(paced(frames, ws.send))
                last = started
                while (message := json.loads(await ws.recv()))["event"] != "clear":
                    if message["event"] == "media":
                        last = loop.time()
                cleared = loop.time()
                sender.cancel()
                await asyncio.wait({sender})
                voiced = started + voiced_at_s
                to_clear.append((cleared - voiced) * 1000)
                to_last.append((last - voiced) * 1000)
    return {
        "figure": "phone_barge_in",
        "runs": runs,
        "vad_start_ms": settings.vad_start_ms,
        "voiced_to_last_media_ms": round(statistics.median(to_last), 1),
        "voiced_to_clear_ms": round(statistics.median(to_clear), 1),
        "over_vad_floor_ms": round(statistics.median(to_clear) - 0.8 * settings.vad_start_ms, 1),
    }
