"""SentenceChunker: sentences released as early as safe, never split in the wrong place."""

from __future__ import annotations

import re

import pytest

from voice_orchestrator.pipeline.sentences import SentenceChunker


def chunk(deltas: list[str], **limits: int) -> list[str]:
    chunker = SentenceChunker(**limits)
    out: list[str] = []
    for delta in deltas:
        out.extend(chunker.push(delta))
    return out + chunker.flush()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there. How are you?", ["Hello there.", "How are you?"]),
        ("Pi is about 3.14 today. Yes!", ["Pi is about 3.14 today.", "Yes!"]),
        ("Dr. Smith met Mr. Jones. They talked.", ["Dr. Smith met Mr. Jones.", "They talked."]),
        ("Use e.g. apples. Fine.", ["Use e.g. apples.", "Fine."]),
        ("J. R. R. Tolkien wrote it. Indeed.", ["J. R. R. Tolkien wrote it.", "Indeed."]),
        ("Visit example.com today. Bye.", ["Visit example.com today.", "Bye."]),
        ("Wait... what? Really!?", ["Wait...", "what?", "Really!?"]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("No punctuation at all", ["No punctuation at all"]),
        ("...", []),
        ("", []),
        ("The answer is no. Sorry.", ["The answer is no.", "Sorry."]),
    ],
)
def test_whole_text(text: str, expected: list[str]) -> None:
    assert chunk([text]) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Pi is about 3.14 today. Dr. Smith agrees... mostly! Visit example.com now.",
        'She said "fine." Then, at 5.30 p.m. sharp, she left.',
    ],
)
def test_word_by_word_equals_whole(text: str) -> None:
    # Tokens as a model sends them: words with their leading space.
    whole = chunk([text])
    words = [w + " " for w in text.split(" ")]
    assert chunk(words) == whole


def test_sentence_is_released_with_its_last_token() -> None:
    chunker = SentenceChunker()
    assert chunker.push("The capital of France") == []
    assert chunker.push(" is Paris.") == ["The capital of France is Paris."]
    assert chunker.push(" It") == []


def test_decimal_at_the_end_waits_for_the_next_token() -> None:
    chunker = SentenceChunker()
    assert chunker.push("It costs 3.") == []
    assert chunker.push("50 dollars.") == ["It costs 3.50 dollars."]


def test_abbreviation_at_the_end_waits() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Ask Dr.") == []
    assert chunker.push(" Who. Ok") == ["Ask Dr. Who."]
    assert chunker.flush() == ["Ok"]


def test_long_run_is_cut_at_a_clause() -> None:
    text = "word " * 30 + "and then, " + "more words " * 5
    chunker = SentenceChunker(soft_limit=100, hard_limit=200)
    parts = chunker.push(text)
    assert parts
    assert parts[0].endswith("then,")


def test_long_run_without_marks_is_cut_at_a_space() -> None:
    chunker = SentenceChunker(soft_limit=50, hard_limit=80)
    parts = chunker.push("word " * 40)
    assert parts
    assert all(len(p) <= 80 for p in parts)
    assert all(p.split() == ["word"] * len(p.split()) for p in parts)
    rest = chunker.flush()
    assert " ".join(parts + rest).split() == ["word"] * 40


def test_no_text_is_lost() -> None:
    text = 'Hi! "Quoted?" she asked... 1.5 kg, e.g. sugar; done.'
    for tokens in (list(text), [w + " " for w in text.split(" ")]):
        parts = chunk(tokens)
        assert re.findall(r"\w+", " ".join(parts)) == re.findall(r"\w+", text)
