"""Azure Communication Services phone calls over a real uvicorn: the bidirectional media stream
driven with ACS's own messages, real speech, and scripted fakes for the engines."""

from __future__ import annotations

import base64

import pytest

from ..fakes import FakeLLM, FakeTTS, fake_providers
from ..telephony_clients import AcsCall, acs_sent_audio
from .conftest import ServerFactory
from .phone import (
    ACS_PATH,
    Stream,
    all_released,
    caller_pcm,
    eventually,
    kind,
    stream,
)

ANSWER = "The capital of France is Paris. It is big."


def speech(call: AcsCall, *, pause: bool = True) -> list[dict[str, object]]:
    pcm = caller_pcm(call.sample_rate)
    silence = bytes(call.sample_rate * 2) if pause else b""  # 1 s
    return call.audio_stream(pcm + silence)


def frame_sizes(phone: Stream) -> list[int]:
    return [
        len(base64.b64decode(m["audioData"]["data"]))
        for m in phone.received
        if m.get("kind") == "AudioData"
    ]


@pytest.mark.parametrize("rate", [16000, 24000])
async def test_a_turn_is_answered_at_the_stream_rate(live_server: ServerFactory, rate: int) -> None:
    llm = FakeLLM()
    async with live_server(fake_providers(llm=llm), telephony_greeting="") as server:
        async with stream(server, ACS_PATH) as phone:
            call = AcsCall(sample_rate=rate)
            await phone.send(call.metadata(), call.dtmf("1"), *speech(call))
            expected = int(0.41 * rate) * 2
            while len(acs_sent_audio(phone.received)) < expected - 16:  # resampling rounds
                await phone.until(kind("AudioData"))
            await eventually(lambda: calls_made(llm, 1))
        await eventually(lambda: all_released(server))
    assert len(acs_sent_audio(phone.received)) / 2 / rate == pytest.approx(0.41, abs=0.01)
    sizes = frame_sizes(phone)
    assert sizes.count(call.frame_bytes) >= len(sizes) - 2  # each sentence's last may be short
    assert len(llm.calls) == 1


async def test_the_greeting_is_spoken_first(live_server: ServerFactory) -> None:
    async with live_server() as server, stream(server, ACS_PATH) as phone:
        call = AcsCall()
        await phone.send(call.metadata())
        await phone.until(kind("AudioData"))
        await phone.send(*call.audio_stream(bytes(call.frame_bytes)))  # the caller is quiet
        while len(acs_sent_audio(phone.received)) < int(0.05 * 16000) * 2:
            await phone.until(kind("AudioData"))


async def test_barge_in_stops_the_audio_and_the_history_keeps_what_was_sent(
    live_server: ServerFactory,
) -> None:
    llm = FakeLLM()
    providers = fake_providers(llm=llm, tts=FakeTTS(seconds_per_char=0.2))
    async with live_server(providers, telephony_greeting="") as server:
        async with stream(server, ACS_PATH) as phone:
            call = AcsCall()
            await phone.send(call.metadata(), *speech(call))
            await phone.until(kind("AudioData"))
            await phone.send(*speech(call, pause=False))
            stop = await phone.until(kind("StopAudio"))
            assert stop == {"kind": "StopAudio", "audioData": None, "stopAudio": {}}
            # The words spoken over the answer are the next question, with the cut answer
            # as context.
            await phone.send(*call.audio_stream(bytes(call.sample_rate * 2)))
            await eventually(lambda: calls_made(llm, 2))
        await eventually(lambda: all_released(server))
    context = [(m.role, m.content) for m in llm.calls[1]]
    spoken = next(text for role, text in context if role == "assistant")
    assert spoken
    assert len(spoken) < len(ANSWER)
    assert ANSWER.startswith(spoken)


async def calls_made(llm: FakeLLM, count: int) -> bool:
    return len(llm.calls) >= count


async def test_an_unsupported_rate_is_refused(live_server: ServerFactory) -> None:
    async with live_server() as server:
        async with stream(server, ACS_PATH) as phone:
            await phone.send(AcsCall(sample_rate=8000).metadata())
            assert await phone.closed_code() == 1003
        assert phone.received == []
        await eventually(lambda: all_released(server))


async def test_the_stream_takes_a_key_when_keys_are_set(live_server: ServerFactory) -> None:
    async with live_server(api_keys="k1", telephony_greeting="") as server:
        async with stream(server, ACS_PATH, "?api_key=k1") as phone:
            call = AcsCall()
            await phone.send(call.metadata(), *speech(call))
            await phone.until(kind("AudioData"))
        await eventually(lambda: all_released(server))
