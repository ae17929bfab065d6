"""Twilio webhook signatures, call tokens, TwiML and public URLs."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from pydantic import SecretStr

from voice_orchestrator.telephony import (
    TWILIO_STREAM_PATH,
    call_token_secret,
    external_url,
    sign_call_token,
    twilio_signature,
    twiml_connect_stream,
    valid_twilio_signature,
    verify_call_token,
    websocket_url,
)

from ..conftest import make_settings
from ..telephony_clients import TwilioCall
from ..telephony_clients import twilio_signature as client_signature

# The worked example of Twilio's webhook security page.
DOCS_TOKEN = "12345"
DOCS_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOCS_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675310",
    "Digits": "1234",
    "From": "+14158675310",
    "To": "+18005551212",
}
DOCS_SIGNATURE = "GvWf1cFY/Q7PnoempGyD5oXAezc="
# The vectors of twilio-python's tests/unit/test_request_validator.py (other caller number).
LIB_PARAMS = DOCS_PARAMS | {"Caller": "+14158675309", "From": "+14158675309"}
LIB_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_signature_matches_twilios_documented_example() -> None:
    assert twilio_signature(DOCS_TOKEN, DOCS_URL, DOCS_PARAMS) == DOCS_SIGNATURE
    assert twilio_signature(DOCS_TOKEN, DOCS_URL, LIB_PARAMS) == LIB_SIGNATURE
    assert valid_twilio_signature(DOCS_TOKEN, DOCS_URL, DOCS_PARAMS, DOCS_SIGNATURE)


def test_field_order_does_not_matter_and_repeated_fields_are_sorted() -> None:
    reordered = dict(reversed(list(DOCS_PARAMS.items())))
    assert twilio_signature(DOCS_TOKEN, DOCS_URL, reordered) == DOCS_SIGNATURE
    assert twilio_signature(DOCS_TOKEN, DOCS_URL, list(DOCS_PARAMS.items())) == DOCS_SIGNATURE
    repeated = twilio_signature("t", "https://h/", [("A", "2"), ("B", "x"), ("A", "1")])
    assert repeated == twilio_signature("t", "https://h/", [("A", "1"), ("A", "2"), ("B", "x")])


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        # twilio-python: a port is removed, and the default port is added, before comparing.
        ("https://mycompany.com:1234/myapp.php?foo=1&bar=2", LIB_SIGNATURE),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ],
)
def test_urls_with_and_without_port_are_accepted(url: str, signature: str) -> None:
    assert valid_twilio_signature(DOCS_TOKEN, url, LIB_PARAMS, signature)


@pytest.mark.parametrize(
    ("token", "url", "params", "signature"),
    [
        ("54321", DOCS_URL, DOCS_PARAMS, DOCS_SIGNATURE),
        (DOCS_TOKEN, DOCS_URL.replace("foo=1", "foo=2"), DOCS_PARAMS, DOCS_SIGNATURE),
        (DOCS_TOKEN, DOCS_URL.replace("https", "http"), DOCS_PARAMS, DOCS_SIGNATURE),
        (DOCS_TOKEN, DOCS_URL, DOCS_PARAMS | {"Digits": "1235"}, DOCS_SIGNATURE),
        (DOCS_TOKEN, DOCS_URL, DOCS_PARAMS | {"Extra": ""}, DOCS_SIGNATURE),
        (DOCS_TOKEN, DOCS_URL, DOCS_PARAMS, DOCS_SIGNATURE.rstrip("=")),
        (DOCS_TOKEN, DOCS_URL, DOCS_PARAMS, ""),
        (DOCS_TOKEN, DOCS_URL, DOCS_PARAMS, "é" * 28),
        (DOCS_TOKEN, "https://mycompany.com:bad/", DOCS_PARAMS, DOCS_SIGNATURE),
    ],
    ids=["token", "url", "scheme", "field", "added-field", "cut", "empty", "non-ascii", "port"],
)
def test_anything_else_is_rejected(
    token: str, url: str, params: dict[str, str], signature: str
) -> None:
    assert not valid_twilio_signature(token, url, params, signature)


def test_the_scripted_client_signs_as_the_service_checks() -> None:
    call = TwilioCall()
    form = call.webhook_form()
    url = "https://voice.example.com/api/telephony/twilio/voice"
    assert client_signature(DOCS_TOKEN, DOCS_URL, DOCS_PARAMS) == DOCS_SIGNATURE
    assert valid_twilio_signature("secret", url, form, client_signature("secret", url, form))


# ------------------------------------------------------------------------------ call tokens

SECRET = b"k" * 32
NOW = 1_780_000_000.25


def test_a_token_verifies_for_its_call_until_it_expires() -> None:
    token = sign_call_token(SECRET, "CA1", ttl_s=120, now=NOW)
    assert verify_call_token(SECRET, token, "CA1", now=NOW)
    assert verify_call_token(SECRET, token, "CA1", now=NOW + 119.9)
    assert not verify_call_token(SECRET, token, "CA1", now=NOW + 120)
    assert not verify_call_token(SECRET, token, "CA1", now=NOW + 3600)


def test_a_token_is_url_safe() -> None:
    token = sign_call_token(SECRET, "CA1", ttl_s=60, now=NOW)
    assert set(token) <= set("0123456789.-_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def test_a_token_is_bound_to_its_call_and_secret() -> None:
    token = sign_call_token(SECRET, "CA1", ttl_s=60, now=NOW)
    assert not verify_call_token(SECRET, token, "CA2", now=NOW)
    assert not verify_call_token(SECRET, token, "CA1\x00", now=NOW)
    assert not verify_call_token(b"other", token, "CA1", now=NOW)


def test_a_tampered_token_is_rejected() -> None:
    token = sign_call_token(SECRET, "CA1", ttl_s=60, now=NOW)
    expiry, mac = token.split(".")
    longer = f"{int(expiry) + 3_600_000}.{mac}"
    flipped = f"{expiry}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}"
    for forged in (longer, flipped, expiry, f"{expiry}.", f".{mac}", token + "x", ""):
        assert not verify_call_token(SECRET, forged, "CA1", now=NOW), forged


@pytest.mark.parametrize("garbage", ["..", "abc.def", "١٢٣.x", "9" * 400 + ".x", "-1.x", " 1.x"])
def test_garbage_tokens_are_rejected_without_errors(garbage: str) -> None:
    assert not verify_call_token(SECRET, garbage, "CA1", now=NOW)


def test_a_token_needs_a_positive_lifetime() -> None:
    with pytest.raises(ValueError, match="positive"):
        sign_call_token(SECRET, "CA1", ttl_s=0, now=NOW)


def test_the_secret_is_the_auth_token_when_set_else_random() -> None:
    assert call_token_secret(SecretStr("tok")) == b"tok"
    first, second = call_token_secret(None), call_token_secret(SecretStr(""))
    assert len(first) == len(second) == 32
    assert first != second
    token = sign_call_token(call_token_secret(SecretStr("tok")), "CA1", ttl_s=60, now=NOW)
    assert verify_call_token(call_token_secret(SecretStr("tok")), token, "CA1", now=NOW)


# ------------------------------------------------------------------------------------ TwiML


def test_twiml_connects_a_stream_with_the_two_parameters() -> None:
    url = "wss://voice.example.com/api/telephony/twilio/stream"
    twiml = twiml_connect_stream(url, {"session_id": "CA123", "token": "17.abc-_"})
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>')
    root = ElementTree.fromstring(twiml)
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Connect"]
    (stream,) = list(root[0])
    assert stream.tag == "Stream"
    assert stream.attrib == {"url": url}
    assert [p.attrib for p in stream] == [
        {"name": "session_id", "value": "CA123"},
        {"name": "token", "value": "17.abc-_"},
    ]


def test_twiml_escapes_what_xml_needs_escaped() -> None:
    value = "a&b<c>\"d' \t\n"
    twiml = twiml_connect_stream("wss://h/s?x=1&y=2", {"token": value})
    stream = ElementTree.fromstring(twiml)[0][0]
    assert stream.get("url") == "wss://h/s?x=1&y=2"
    assert stream[0].get("value") == value


def test_twiml_refuses_characters_xml_cannot_carry() -> None:
    with pytest.raises(ValueError, match="control"):
        twiml_connect_stream("wss://h/s", {"token": "a\x00b"})


# ------------------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://voice.example.com", "wss://voice.example.com/api/telephony/twilio/stream"),
        ("https://example.com/vo/", "wss://example.com/vo/api/telephony/twilio/stream"),
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/api/telephony/twilio/stream"),
    ],
)
def test_websocket_urls_follow_the_public_url(base: str, expected: str) -> None:
    assert websocket_url(base, TWILIO_STREAM_PATH) == expected


def test_external_urls_keep_prefix_and_query() -> None:
    url = external_url("https://example.com/vo/", "/api/telephony/twilio/voice", "a=1&b=2")
    assert url == "https://example.com/vo/api/telephony/twilio/voice?a=1&b=2"
    assert external_url("https://example.com", "/x") == "https://example.com/x"


@pytest.mark.parametrize("base", ["example.com", "ftp://example.com", "https://", "/relative"])
def test_public_urls_must_be_absolute_http(base: str) -> None:
    with pytest.raises(ValueError, match="absolute"):
        websocket_url(base, TWILIO_STREAM_PATH)


# --------------------------------------------------------------------------------- settings


def test_telephony_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = make_settings()
    assert defaults.twilio_auth_token is None
    assert defaults.public_url is None
    assert defaults.telephony_greeting == "Hello! How can I help you?"
    monkeypatch.setenv("ORCH_TWILIO_AUTH_TOKEN", "s3cr3t-auth")
    monkeypatch.setenv("ORCH_PUBLIC_URL", "https://voice.example.com")
    monkeypatch.setenv("ORCH_TELEPHONY_GREETING", "")
    configured = make_settings()
    assert configured.twilio_auth_token is not None
    assert configured.twilio_auth_token.get_secret_value() == "s3cr3t-auth"
    assert "s3cr3t-auth" not in repr(configured)
    assert configured.public_url == "https://voice.example.com"
    assert configured.telephony_greeting == ""
