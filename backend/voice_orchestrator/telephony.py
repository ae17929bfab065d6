"""Phone-call plumbing that needs no web framework: Twilio's webhook signature, the short-lived
token that ties a media stream to the call that asked for it, the TwiML answer, and public URLs.

The WebSocket message formats of Twilio and Azure Communication Services are in
``telephony_messages``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from urllib.parse import SplitResult, urlsplit, urlunsplit
from xml.etree import ElementTree

from pydantic import SecretStr

TWILIO_VOICE_PATH = "/api/telephony/twilio/voice"
TWILIO_STREAM_PATH = "/api/telephony/twilio/stream"
ACS_STREAM_PATH = "/api/telephony/acs/stream"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
# Twilio opens the stream a moment after it receives the TwiML; the token only has to live
# that long.
CALL_TOKEN_TTL_S = 120.0

FormFields = Mapping[str, str] | Sequence[tuple[str, str]]

_TOKEN_CONTEXT = b"voice-orchestrator call token v1\x00"
_MAX_EXPIRY_DIGITS = 16
# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_WEBSOCKET_SCHEMES = {"https": "wss", "wss": "wss", "http": "ws", "ws": "ws"}


def twilio_signature(auth_token: str, url: str, params: FormFields) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a form-encoded request to ``url``: HMAC-SHA1
    keyed with the auth token over the full URL followed by each field's name and value, fields
    sorted by name (and the values of a repeated name sorted), base64."""
    pairs = params.items() if isinstance(params, Mapping) else params
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    signed = url + "".join(
        name + value for name in sorted(grouped) for value in sorted(grouped[name])
    )
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_twilio_signature(auth_token: str, url: str, params: FormFields, signature: str) -> bool:
    """Whether ``signature`` is Twilio's for this request. Like Twilio's helper libraries, the
    URL is also tried with its port removed and with the scheme's default port added, since
    Twilio signs whichever form was configured."""
    if not signature:
        return False
    given = signature.encode("utf-8", "replace")
    matches = [
        hmac.compare_digest(twilio_signature(auth_token, candidate, params).encode(), given)
        for candidate in _url_forms(url)
    ]
    return any(matches)


def _url_forms(url: str) -> list[str]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return [url]
    host = parts.netloc
    if port is not None:
        other = host[: host.rfind(":")]
    elif parts.scheme in ("https", "http"):
        other = f"{host}:{443 if parts.scheme == 'https' else 80}"
    else:
        return [url]
    return [url, urlunsplit(parts._replace(netloc=other))]


def call_token_secret(auth_token: SecretStr | None) -> bytes:
    """The key that signs call tokens: the Twilio auth token when it is configured, otherwise
    random bytes only this process knows. Call it once at start-up and keep the result. With
    several instances behind one address ORCH_TWILIO_AUTH_TOKEN must be set, or a stream that
    lands on another instance than its webhook cannot be verified."""
    if auth_token is not None and auth_token.get_secret_value():
        return auth_token.get_secret_value().encode()
    return secrets.token_bytes(32)


def sign_call_token(secret: bytes, call_sid: str, ttl_s: float, now: float) -> str:
    """A token that proves, until ``now + ttl_s`` (Unix seconds), that this service answered the
    call ``call_sid``. URL-safe: the expiry in milliseconds, a dot, the base64url HMAC-SHA256."""
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    expiry_ms = str(int((now + ttl_s) * 1000))
    return f"{expiry_ms}.{_token_mac(secret, call_sid, expiry_ms)}"


def verify_call_token(secret: bytes, token: str, call_sid: str, now: float) -> bool:
    """Whether ``token`` was signed with ``secret`` for ``call_sid`` and has not expired."""
    expiry_ms, _, mac = token.partition(".")
    if not (expiry_ms.isascii() and expiry_ms.isdigit()) or len(expiry_ms) > _MAX_EXPIRY_DIGITS:
        return False
    expected = _token_mac(secret, call_sid, expiry_ms).encode()
    if not hmac.compare_digest(expected, mac.encode("utf-8", "replace")):
        return False
    return now * 1000 < int(expiry_ms)


def _token_mac(secret: bytes, call_sid: str, expiry_ms: str) -> str:
    message = _TOKEN_CONTEXT + call_sid.encode("utf-8", "replace") + b"\x00" + expiry_ms.encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def twiml_connect_stream(stream_url: str, parameters: Mapping[str, str]) -> str:
    """TwiML that connects the call to a bidirectional media stream at ``stream_url``
    (``wss://…``), handing ``parameters`` over as ``<Parameter>``s: Twilio allows no query
    string in a stream URL and passes these in the ``start`` message's ``customParameters``."""
    for text in (stream_url, *parameters.keys(), *parameters.values()):
        if _NOT_XML.search(text):
            raise ValueError("TwiML cannot carry control characters")
    response = ElementTree.Element("Response")
    connect = ElementTree.SubElement(response, "Connect")
    stream = ElementTree.SubElement(connect, "Stream", url=stream_url)
    for name, value in parameters.items():
        ElementTree.SubElement(stream, "Parameter", name=name, value=value)
    body = ElementTree.tostring(response, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>{body}'


def external_url(base_url: str, path: str, query: str = "") -> str:
    """``path`` (and ``query``) under the public ``base_url`` (``https://host[/prefix]``), as a
    caller outside any proxy sees it, e.g. the URL Twilio signs."""
    base = _split_base(base_url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + path, query, ""))


def websocket_url(base_url: str, path: str) -> str:
    """The ``wss://`` (``ws://`` for plain http) URL of ``path`` under the public ``base_url``."""
    base = _split_base(base_url)
    scheme = _WEBSOCKET_SCHEMES[base.scheme]
    return urlunsplit((scheme, base.netloc, base.path.rstrip("/") + path, "", ""))


def _split_base(base_url: str) -> SplitResult:
    base = urlsplit(base_url)
    if base.scheme not in _WEBSOCKET_SCHEMES or not base.netloc:
        raise ValueError(f"not an absolute http(s) URL: {base_url!r}")
    return base
