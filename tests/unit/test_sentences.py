"""SentenceChunker: sentences released as early as safe, never split in the wrong place."""

from __future__ import annotations

import re

import pytest

from voice_orchestrator.pipeline.sentences import SentenceChunker
from voice_orchestrator.settings import Settings


def chunk(deltas: list[str], **options: int | None) -> list[str]:
    chunker = SentenceChunker(**options)  # type: ignore[arg-type]
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


FIRST = "Well, as far as I can tell from the records, the capital of France is Paris. It is big."
WHOLE = [
    "Well, as far as I can tell from the records, the capital of France is Paris.",
    "It is big.",
]


@pytest.mark.parametrize(
    ("min_words", "expected"),
    [
        (None, WHOLE),
        (0, WHOLE),
        # "Well," has one word: the first clause long enough ends at the second comma.
        (4, ["Well, as far as I can tell from the records,", "the capital of France is Paris.",
             "It is big."]),
        (1, ["Well,", "as far as I can tell from the records, the capital of France is Paris.",
             "It is big."]),
        (20, WHOLE),  # no clause that long before the sentence ends
    ],
)  # fmt: skip
def test_first_clause_of_a_long_first_sentence(min_words: int | None, expected: list[str]) -> None:
    assert chunk([FIRST], first_clause_min_words=min_words) == expected
    words = [w + " " for w in FIRST.split(" ")]
    assert chunk(words, first_clause_min_words=min_words) == expected


def test_first_clause_is_released_with_its_mark_and_the_next_space() -> None:
    chunker = SentenceChunker(first_clause_min_words=3)
    assert chunker.push("If you ask me") == []
    assert chunker.push(",") == []  # "," may still be part of "1,000"
    assert chunker.push(" the") == ["If you ask me,"]
    assert chunker.push(" answer, in short, is yes.") == ["the answer, in short, is yes."]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("It costs about 1,000 euros; more in summer.", "It costs about 1,000 euros;"),
        ("We open at 5:30 sharp: come early.", "We open at 5:30 sharp:"),
        ("A well-known fact — the sea is salty.", "A well-known fact —"),
        ("A well-known fact - the sea is salty.", "A well-known fact -"),
        ("Yes. Well, as far as I know, it is.", "Yes."),
    ],
)
def test_first_clause_marks(text: str, first: str) -> None:
    assert chunk([text], first_clause_min_words=3)[0] == first


def test_only_the_first_chunk_of_a_reply_is_a_clause() -> None:
    text = "Sure. Then, after a long pause, she said it. And again, after a while, yes."
    assert chunk([text], first_clause_min_words=1) == [
        "Sure.",
        "Then, after a long pause, she said it.",
        "And again, after a while, yes.",
    ]
    assert chunk([text[6:]], first_clause_min_words=1)[:2] == [
        "Then,",
        "after a long pause, she said it.",
    ]


def test_first_clause_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).tts.first_clause_min_words is None
    monkeypatch.setenv("ORCH_TTS__FIRST_CLAUSE_MIN_WORDS", "5")
    assert Settings(_env_file=None).tts.first_clause_min_words == 5
