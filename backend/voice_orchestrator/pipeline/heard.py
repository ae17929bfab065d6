"""What the listener heard of an answer, from each sentence's audio duration.

An answer that runs to its end is heard whole. One that is cut keeps the words up to the
listener's last playback report (a WebSocket ``playback.mark``, a Twilio mark coming back, a
Realtime ``conversation.item.truncate``), or up to the audio that was sent when the listener
reports nothing. Inside the sentence where it stops, the words are counted in proportion to the
sentence's audio: a duration-based position, not a guess at characters per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class _Sentence:
    text: str
    audio_ms: float = 0.0  # synthesized so far


class HeardText:
    def __init__(self) -> None:
        self._sentences: list[_Sentence] = []
        self.sent_ms = 0.0
        self.played_ms: float | None = None

    def synthesized(self, index: int, text: str, ms: float) -> None:
        """``ms`` more of sentence ``index`` (spoken text ``text``) exists."""
        while len(self._sentences) <= index:
            self._sentences.append(_Sentence(text))
        self._sentences[index].audio_ms += ms

    def sentence_text(self, index: int) -> str:
        return self._sentences[index].text if index < len(self._sentences) else ""

    def sent(self, ms: float) -> None:
        self.sent_ms += ms

    def played(self, ms: float) -> None:
        """The listener reports having played the first ``ms`` of the answer."""
        ms = min(ms, self.sent_ms)
        self.played_ms = ms if self.played_ms is None else max(self.played_ms, ms)

    @property
    def any_sent(self) -> bool:
        return self.sent_ms > 0

    def text_until(self, position_ms: float) -> str:
        """The words of the first ``position_ms`` of the answer's audio."""
        parts: list[str] = []
        start = 0.0
        for sentence in self._sentences:
            if position_ms <= start or sentence.audio_ms <= 0:
                break
            end = start + sentence.audio_ms
            if position_ms >= end:
                parts.append(sentence.text.strip())
            else:
                words = sentence.text.split()
                count = math.ceil(len(words) * (position_ms - start) / sentence.audio_ms)
                parts.append(" ".join(words[:count]))
                break
            start = end
        return " ".join(part for part in parts if part)

    def kept(self) -> str:
        """What the history keeps of a cut answer."""
        position = self.played_ms if self.played_ms is not None else self.sent_ms
        return self.text_until(position)
