"""Twilio phone calls over a real uvicorn: the voice webhook, then the Media Stream driven with
Twilio's own messages, real speech encoded to μ-law, and scripted fakes for the engines."""

from __future__ import annotations

import base64
import time

import pytest
from websockets.exceptions import InvalidStatus

from voice_orchestrator.telephony import verify_call_token

from ..fakes import FakeLLM, FakeTTS, fake_providers
from ..telephony_clients import TwilioCall, sent_audio, sent_marks, twilio_signature
from .conftest import ServerFactory
from .phone import (
    ACS_PATH,
    CALLER_PAUSE,
    CALLER_SPEECH,
    TWILIO_PATH,
    VOICE_PATH,
    all_released,
    event,
    eventually,
    has_turns,
    history,
    stream,
    twilio_call,
    webhook,
)

ANSWER = "The capital of France is Paris. It is big."
# A second sentence long enough to still be playing when the caller speaks over it.
LONG_ANSWER = ("The capital of France is Paris. ", "It is a big city with many old streets.")


def media_bytes(message: dict[str, object]) -> int:
    media = message["media"]
    assert isinstance(media, dict)
    return len(base64.b64decode(media["payload"]))


async def test_the_webhook_answers_twiml_connecting_the_call_to_its_stream(
    live_server: ServerFactory,
) -> None:
    call = TwilioCall()
    async with live_server() as server:
        answer = await webhook(server, call)
        secret = server.app.state.services.call_token_secret
    assert answer.status == 200
    assert answer.stream_url == server.url.replace("http://", "ws://") + TWILIO_PATH
    assert answer.parameters.keys() == {"session_id", "token"}
    assert answer.parameters["session_id"] == call.call_sid
    token = answer.parameters["token"]
    assert verify_call_token(secret, token, call.call_sid, time.time())
    assert not verify_call_token(secret, token, TwilioCall().call_sid, time.time())


async def test_the_stream_url_is_on_the_public_address(live_server: ServerFactory) -> None:
    async with live_server(public_url="https://phone.example.com/voice") as server:
        answer = await webhook(server, TwilioCall())
    assert answer.stream_url == "wss://phone.example.com/voice" + TWILIO_PATH


async def test_a_webhook_without_a_call_sid_is_refused(live_server: ServerFactory) -> None:
    async with live_server() as server:
        assert (await webhook(server, TwilioCall(call_sid="../etc"))).status == 400


async def test_with_an_auth_token_only_signed_webhooks_are_answered(
    live_server: ServerFactory,
) -> None:
    public = "https://phone.example.com"
    call = TwilioCall()
    signed = twilio_signature("tw-secret", public + VOICE_PATH, call.webhook_form())
    other = twilio_signature("other", public + VOICE_PATH, call.webhook_form())
    async with live_server(twilio_auth_token="tw-secret", public_url=public) as server:
        missing = await webhook(server, call)
        wrong = await webhook(server, call, {"X-Twilio-Signature": other})
        tampered = await webhook(server, call, {"X-Twilio-Signature": signed}, To="+10000000000")
        valid = await webhook(server, call, {"X-Twilio-Signature": signed})
    assert (missing.status, wrong.status, tampered.status) == (403, 403, 403)
    assert valid.status == 200
    assert valid.parameters["session_id"] == call.call_sid


@pytest.mark.parametrize(
    "case", ["missing", "other call", "garbage", "media first", "connected twice"]
)
async def test_a_stream_without_a_valid_token_is_closed_before_any_audio(
    live_server: ServerFactory, case: str
) -> None:
    call = TwilioCall()
    async with live_server() as server:
        other = await webhook(server, TwilioCall())
        parameters = {
            "missing": {"session_id": call.call_sid},
            "other call": other.parameters,
            "garbage": {"session_id": call.call_sid, "token": "123.abc"},
            "media first": {},
            "connected twice": {},
        }[case]
        async with stream(server, TWILIO_PATH) as phone:
            await phone.send(call.connected())
            if case == "media first":
                await phone.send(call.media(CALLER_SPEECH[0]))
            elif case == "connected twice":
                await phone.send(call.connected())
            else:
                await phone.send(call.start(parameters))
            assert await phone.closed_code() == 1008
        assert phone.received == []
        await eventually(lambda: all_released(server))


async def test_a_call_over_the_socket_limit_is_closed_with_1013(
    live_server: ServerFactory,
) -> None:
    async with live_server(max_sessions=1, telephony_greeting="") as server:
        async with twilio_call(server), twilio_call(server) as second:
            assert await second.closed_code() == 1013
            assert second.received == []
        await eventually(lambda: all_released(server))


async def test_a_silent_stream_is_closed_as_idle(live_server: ServerFactory) -> None:
    async with (
        live_server(ws_idle_timeout_s=0.5, telephony_greeting="") as server,
        twilio_call(server) as phone,
    ):
        assert await phone.closed_code() == 1001
        await eventually(lambda: all_released(server))


async def test_a_page_of_another_site_cannot_open_a_phone_stream(
    live_server: ServerFactory,
) -> None:
    async with live_server() as server:
        for path in (TWILIO_PATH, ACS_PATH):
            with pytest.raises(InvalidStatus) as refused:
                async with stream(server, path, additional_headers={"Origin": "https://evil.test"}):
                    pass
            assert refused.value.response.status_code == 403


async def test_api_keys_do_not_apply_to_twilio_but_to_acs(live_server: ServerFactory) -> None:
    async with live_server(api_keys="k1", telephony_greeting="") as server:
        async with twilio_call(server) as phone:
            await phone.send(phone.call.stop())
            assert await phone.closed_code() == 1000
        with pytest.raises(InvalidStatus) as refused:
            async with stream(server, ACS_PATH):
                pass
        assert refused.value.response.status_code == 403


async def test_the_greeting_is_spoken_in_mulaw_frames_followed_by_a_mark(
    live_server: ServerFactory,
) -> None:
    async with live_server() as server, twilio_call(server) as phone:
        mark = await phone.until(event("mark"))
        before = phone.received[:-1]
        assert before
        assert all(m["event"] == "media" for m in before)
        assert {m["streamSid"] for m in phone.received} == {phone.call.stream_sid}
        assert all(media_bytes(m) == 160 for m in before[:-1])
        assert 0 < media_bytes(before[-1]) <= 160
        assert mark["mark"]["name"]
        # The fake speaks 10 ms per character of the sentence.
        assert len(sent_audio(before)) / 2 / 8000 == pytest.approx(0.06, abs=0.005)


async def test_a_spoken_turn_is_answered_with_media_and_a_mark_per_sentence(
    live_server: ServerFactory,
) -> None:
    llm = FakeLLM()
    async with (
        live_server(fake_providers(llm=llm), telephony_greeting="") as server,
        twilio_call(server) as phone,
    ):
        call = phone.call
        await phone.send(call.dtmf("5"), *call.media_stream(CALLER_SPEECH + CALLER_PAUSE))
        await phone.until(event("mark"))
        await phone.until(event("mark"))
        marks = sent_marks(phone.received)
        assert len(marks) == len(set(marks)) == 2
        await phone.send(*(call.mark(name) for name in marks))
        assert phone.received[0]["event"] == "media"
        assert len(sent_audio(phone.received)) / 2 / 8000 == pytest.approx(0.41, abs=0.01)
        await eventually(lambda: has_turns(server, "", call.call_sid))
        # The call goes on: a second question gets the first turn as context.
        await phone.send(*call.media_stream(CALLER_SPEECH + CALLER_PAUSE))
        await phone.until(event("mark"))
        await phone.send(call.stop())
        assert await phone.closed_code() == 1000
        await eventually(lambda: all_released(server))
        turns = await history(server, "", call.call_sid)
    assert (turns[0].assistant, turns[0].interrupted) == (ANSWER, False)
    assert ("assistant", ANSWER) in [(m.role, m.content) for m in llm.calls[1]]


@pytest.mark.parametrize("echoed", [True, False])
async def test_barge_in_clears_twilio_and_the_history_keeps_what_the_marks_said(
    live_server: ServerFactory, echoed: bool
) -> None:
    """The first sentence's mark comes back before the caller speaks over the second (heard),
    or only with the ``clear`` (never played: nothing was heard)."""
    providers = fake_providers(llm=FakeLLM(LONG_ANSWER), tts=FakeTTS(seconds_per_char=0.05))
    async with (
        live_server(providers, telephony_greeting="") as server,
        twilio_call(server) as phone,
    ):
        call = phone.call
        await phone.send(*call.media_stream(CALLER_SPEECH + CALLER_PAUSE))
        first = (await phone.until(event("mark")))["mark"]["name"]
        if echoed:
            await phone.send(call.mark(first))
        await phone.until(event("media"))  # the second sentence is playing
        await phone.send(*call.media_stream(CALLER_SPEECH))
        await phone.until(event("clear"))
        if not echoed:  # Twilio hands back the marks of the audio it dropped
            await phone.send(call.mark(first))
        await eventually(lambda: has_turns(server, "", call.call_sid))
        await phone.send(call.stop())
        assert await phone.closed_code() == 1000
        cleared = next(i for i, m in enumerate(phone.received) if m["event"] == "clear")
        assert all(m["event"] != "media" for m in phone.received[cleared:])
        await eventually(lambda: all_released(server))
        turns = await history(server, "", call.call_sid)
    heard = LONG_ANSWER[0].strip() if echoed else ""
    assert (turns[0].assistant, turns[0].interrupted) == (heard, True)


async def test_stop_mid_answer_ends_all_work_of_the_call(live_server: ServerFactory) -> None:
    llm = FakeLLM(token_s=0.5)
    providers = fake_providers(llm=llm, tts=FakeTTS(seconds_per_char=0.2))
    async with (
        live_server(providers, telephony_greeting="") as server,
        twilio_call(server) as phone,
    ):
        call = phone.call
        await phone.send(*call.media_stream(CALLER_SPEECH + CALLER_PAUSE))
        await phone.until(event("media"))
        await phone.send(call.stop())
        assert await phone.closed_code() == 1000
        await eventually(lambda: all_released(server))
        assert llm.stream_closed
        assert llm.tokens_sent < len(llm.tokens)
