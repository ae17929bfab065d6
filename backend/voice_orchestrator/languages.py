"""The language codes the speech recognizers know.

Whisper (the embedded faster-whisper engine and OpenAI's transcription API alike) takes ISO 639-1
codes, plus a few three-letter ones for languages that have none. A ``language`` outside this list
is a client's mistake: faster-whisper with an English-only model would otherwise ignore it and
answer as if nothing were wrong, and an upstream would refuse it as a 502 instead of a 400.
The table is faster-whisper's own list (a test compares them); it is kept here so that checking
a request does not import the engine.
"""

from __future__ import annotations

from .errors import InvalidRequest

WHISPER_LANGUAGES = frozenset(
    {
        "af", "am", "ar", "as", "az", "ba", "be", "bg", "bn", "bo", "br", "bs", "ca", "cs", "cy",
        "da", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fo", "fr", "gl", "gu", "ha", "haw",
        "he", "hi", "hr", "ht", "hu", "hy", "id", "is", "it", "ja", "jw", "ka", "kk", "km", "kn",
        "ko", "la", "lb", "ln", "lo", "lt", "lv", "mg", "mi", "mk", "ml", "mn", "mr", "ms", "mt",
        "my", "ne", "nl", "nn", "no", "oc", "pa", "pl", "ps", "pt", "ro", "ru", "sa", "sd", "si",
        "sk", "sl", "sn", "so", "sq", "sr", "su", "sv", "sw", "ta", "te", "tg", "th", "tk", "tl",
        "tr", "tt", "uk", "ur", "uz", "vi", "yi", "yo", "yue", "zh",
    }
)  # fmt: skip


def whisper_language(code: str) -> str | None:
    """The Whisper code for a language tag ('en', 'EN', 'en-US' and 'en_GB' give 'en'), or None
    when the tag names no language Whisper knows."""
    primary = code.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in WHISPER_LANGUAGES else None


def check_language(code: str | None) -> str | None:
    """A request's ``language`` as the recognizers want it: None stays None (detect, or the
    configured ``ORCH_STT__LANGUAGE``), a known tag becomes its Whisper code.

    Raises InvalidRequest (400 INVALID_REQUEST) for a tag that names no known language.
    """
    if code is None:
        return None
    known = whisper_language(code)
    if known is None:
        raise InvalidRequest(
            "language must be an ISO 639-1 code of a language the speech recognizer knows, "
            "such as 'en', 'fr' or 'en-US'."
        )
    return known
