"""Cuts a streamed reply into sentences for speech, as early as it safely can.

A sentence is released the moment its closing punctuation arrives, unless what precedes it
could still grow into something else (a decimal like ``3.``, an abbreviation like ``Dr.``), so
the first audio is never held back by waiting for the next token. A long run without sentence
punctuation is cut at a clause mark or, failing that, at a space.

With ``first_clause_min_words``, the first chunk of a reply may be a clause: it is released at
the first clause mark (comma, semicolon, colon, dash) that a space follows and that at least
that many words precede, so speech can start before a long first sentence ends.
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e",
        "approx", "inc", "ltd", "corp", "fig", "jan", "feb", "mar", "apr", "jun",
        "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "a.m", "p.m", "ph.d", "cf",
    }
)  # fmt: skip
SENTENCE_END = ".!?…。！？"  # noqa: RUF001
CLOSERS = "\"')]}»”’"  # noqa: RUF001
CLAUSE_MARKS = ",;:—–"  # noqa: RUF001
# Leading characters that only belong to the previous sentence (closing quotes, dots of an
# ellipsis that arrived in the next token).
_LEADING_JUNK = re.compile(r"^[\s" + re.escape(SENTENCE_END + CLOSERS) + r"]+")
_HAS_WORD = re.compile(r"\w")
# A clause mark followed by a space ("1,000" and "5:30" are not clauses), or a spaced hyphen.
_CLAUSE_END = re.compile(r"[" + CLAUSE_MARKS + r"](?=\s)|(?<=\s)-(?=\s)")
_WORD = re.compile(r"\w+(?:['’]\w+)*")  # noqa: RUF001


class SentenceChunker:
    """``push(delta)`` returns the sentences completed so far; ``flush()`` the rest."""

    def __init__(
        self,
        *,
        soft_limit: int = 120,
        hard_limit: int = 240,
        first_clause_min_words: int | None = None,
    ) -> None:
        self._buffer = ""
        self._soft = soft_limit
        self._hard = hard_limit
        # None (or 0) once the first chunk is out, or when first clauses are off.
        self._clause_words = first_clause_min_words or None

    def push(self, text: str) -> list[str]:
        self._buffer += text
        sentences: list[str] = []
        while (cut := self._find_cut()) is not None:
            sentence, self._buffer = self._buffer[:cut], self._buffer[cut:]
            self._emit(sentence, sentences)
        return sentences

    def flush(self) -> list[str]:
        sentences: list[str] = []
        self._emit(self._buffer, sentences)
        self._buffer = ""
        return sentences

    def _emit(self, sentence: str, into: list[str]) -> None:
        cleaned = _LEADING_JUNK.sub("", sentence).strip()
        if _HAS_WORD.search(cleaned):
            into.append(cleaned)
            self._clause_words = None

    def _find_cut(self) -> int | None:
        sentence = self._sentence_cut()
        if self._clause_words is None:
            return sentence
        clause = self._first_clause_cut(self._clause_words)
        if clause is None or (sentence is not None and sentence <= clause):
            return sentence
        return clause

    def _first_clause_cut(self, min_words: int) -> int | None:
        for mark in _CLAUSE_END.finditer(self._buffer):
            if len(_WORD.findall(self._buffer, 0, mark.end())) >= min_words:
                return mark.end()
        return None

    def _sentence_cut(self) -> int | None:
        text = self._buffer
        for i, ch in enumerate(text):
            if ch in SENTENCE_END and self._ends_sentence(text, i):
                end = i + 1
                while end < len(text) and (text[end] in SENTENCE_END or text[end] in CLOSERS):
                    end += 1
                if end == len(text) and text[i] == "." and text[:i][-1:].isdigit():
                    return None  # "3." may become "3.5"
                if _has_content(text[:end]):
                    return end
        if len(text) > self._soft:
            clause = max(text.rfind(mark, 0, self._hard) for mark in CLAUSE_MARKS)
            if clause > 0 and text[clause + 1 : clause + 2].isspace():
                return clause + 1
        if len(text) > self._hard:
            space = text.rfind(" ", 0, self._hard)
            return space if space > 0 else self._hard
        return None

    @staticmethod
    def _ends_sentence(text: str, i: int) -> bool:
        """Whether the mark at ``i`` can end a sentence, judging by what stands before and after."""
        if text[i] != ".":
            return True
        after = text[i + 1 : i + 2]
        before = text[:i]
        if after and after.isdigit() and before[-1:].isdigit():
            return False  # 3.14
        word = re.search(r"([\w.]+)$", before)
        if word is not None:
            token = word.group(1).lower()
            if token in ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
                return False  # Dr. Smith, J. R. R. Tolkien
        # example.com, v1.2: a dot followed by a letter is inside a word
        return not after or after.isspace() or after in CLOSERS or after in SENTENCE_END


def _has_content(text: str) -> bool:
    return bool(_HAS_WORD.search(_LEADING_JUNK.sub("", text)))
