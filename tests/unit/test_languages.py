"""A request's language is checked against the recognizers' languages."""

from __future__ import annotations

import pytest

from voice_orchestrator.errors import InvalidRequest
from voice_orchestrator.languages import WHISPER_LANGUAGES, check_language


def test_the_table_is_faster_whispers_list() -> None:
    tokenizer = pytest.importorskip("faster_whisper.tokenizer")
    assert frozenset(tokenizer._LANGUAGE_CODES) == WHISPER_LANGUAGES


@pytest.mark.parametrize(
    ("code", "expected"),
    [(None, None), ("en", "en"), ("EN", "en"), ("en-US", "en"), ("zh_TW", "zh"), ("haw", "haw")],
)
def test_known_languages_become_whisper_codes(code: str | None, expected: str | None) -> None:
    assert check_language(code) == expected


@pytest.mark.parametrize("code", ["zz", "xx-YY", "eng", "", "english"])
def test_unknown_languages_are_a_400(code: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_language(code)
    assert info.value.code == "INVALID_REQUEST"
    assert "language" in info.value.message
