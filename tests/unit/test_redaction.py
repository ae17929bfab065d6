"""Redaction of long digit runs, written or spoken, and where the REST turn applies it."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voice_orchestrator.pipeline.redaction import REDACTED, redact

from ..conftest import AppClient
from ..fakes import FakeLLM, FakeSTT, fake_providers, make_wav


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 ok", f"card {REDACTED} ok"),
        ("card 4111-1111-1111-1111.", f"card {REDACTED}."),
        ("account 123456789012", f"account {REDACTED}"),
        ("(123456789012345)", f"({REDACTED})"),
        ("four one one one one one one one one one one one", REDACTED),
        ("Zero, oh, one, two, three, four, five, six, seven, eight, nine, one.", f"{REDACTED}."),
        ("call 555 123 4567 now", "call 555 123 4567 now"),  # 10 digits stay
        ("in 2024 and 2025", "in 2024 and 2025"),
        ("12345678901", "12345678901"),  # 11 digits stay
        (
            "one two three four five six seven eight nine",
            "one two three four five six seven eight nine",
        ),
        ("", ""),
    ],
)
def test_long_digit_runs_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789 -ab.", max_size=80))
def test_no_run_of_twelve_digits_survives(text: str) -> None:
    assert not re.search(r"\d(?:[ -]?\d){11}", redact(text))


def test_adversarial_input_is_linear() -> None:
    text = "1 " * 50_000 + "x" + "one " * 20_000 + "x"
    out = redact(text)  # finishes at once: no backtracking blow-up
    assert out.count(REDACTED) == 2


@pytest.mark.parametrize("enabled", [True, False])
async def test_rest_turn_redacts_headers_and_history(app_client: AppClient, enabled: bool) -> None:
    said = "My card is 4111 1111 1111 1111."
    llm = FakeLLM(["Your card 4111 1111 1111 1111 is noted."])
    providers = fake_providers(stt=FakeSTT(said), llm=llm)
    async with app_client(providers, redact=enabled) as client:
        for _ in range(2):
            response = await client.post(
                "/api/orchestrator/dialogue",
                content=make_wav(1.0),
                params={"session_id": "card"},
                headers={"content-type": "audio/wav"},
            )
            assert response.status_code == 200
        json_response = await client.post(
            "/api/orchestrator/dialogue",
            content=make_wav(1.0),
            headers={"content-type": "audio/wav", "accept": "application/json"},
        )
    transcript = unquote(response.headers["x-transcript"])
    reply = unquote(response.headers["x-response-text"])
    history = " ".join(m.content for m in llm.calls[1][:-1])
    body = json_response.json()
    if enabled:
        assert transcript == f"My card is {REDACTED}."
        assert reply == f"Your card {REDACTED} is noted."
        assert "4111" not in history
        assert "4111" not in body["transcript"] + body["response_text"]
    else:
        assert transcript == said
        assert "4111" in history
        assert "4111" in body["transcript"]
