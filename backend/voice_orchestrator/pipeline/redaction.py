"""Redaction of long digit runs (card, account and phone numbers), written or spoken."""

from __future__ import annotations

import re

REDACTED = "[redacted]"
_DIGIT_WORDS = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
# 12+ digits, single spaces or dashes allowed between them.
_DIGITS = re.compile(r"(?<!\d)\d(?:[ -]?\d){11,}(?!\d)")
# 12+ spoken digit words, separated by spaces, commas or dashes.
_SPOKEN = re.compile(rf"\b{_DIGIT_WORDS}(?:[\s,-]+{_DIGIT_WORDS}){{11,}}\b", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every run of 12 or more digits replaced by ``[redacted]``."""
    return _SPOKEN.sub(REDACTED, _DIGITS.sub(REDACTED, text))
