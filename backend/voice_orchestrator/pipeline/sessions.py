"""Conversation history per session: the last N turns, kept in memory with a TTL and a cap."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from ..providers.base import ChatMessage

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True, slots=True)
class Turn:
    user: str
    assistant: str


class SessionStore(Protocol):
    async def history(self, session_id: str) -> list[Turn]:
        """The stored turns of a session, oldest first; empty for an unknown session."""
        ...

    async def append(self, session_id: str, turn: Turn) -> None:
        """Adds a turn, keeping only the most recent ones."""
        ...

    async def aclose(self) -> None: ...


class MemorySessionStore:
    """Per-process store. Sessions expire ``ttl_s`` after their last turn; beyond
    ``max_sessions`` the least recently used one is dropped."""

    def __init__(self, *, max_turns: int, ttl_s: float, max_sessions: int) -> None:
        self._max_turns = max_turns
        self._ttl_s = ttl_s
        self._max_sessions = max_sessions
        self._sessions: OrderedDict[str, tuple[float, list[Turn]]] = OrderedDict()

    async def history(self, session_id: str) -> list[Turn]:
        entry = self._sessions.get(session_id)
        if entry is None:
            return []
        if time.monotonic() - entry[0] > self._ttl_s:
            del self._sessions[session_id]
            return []
        return list(entry[1])

    async def append(self, session_id: str, turn: Turn) -> None:
        turns = await self.history(session_id)
        turns.append(turn)
        turns = turns[-self._max_turns :] if self._max_turns else []
        self._sessions[session_id] = (time.monotonic(), turns)
        self._sessions.move_to_end(session_id)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)

    async def aclose(self) -> None:
        self._sessions.clear()

    def __len__(self) -> int:
        return len(self._sessions)


def build_context(system_prompt: str, turns: list[Turn]) -> list[ChatMessage]:
    """The messages that precede a new user utterance."""
    messages = [ChatMessage("system", system_prompt)] if system_prompt else []
    for turn in turns:
        messages.append(ChatMessage("user", turn.user))
        if turn.assistant:  # empty when the user interrupted before any of the reply was heard
            messages.append(ChatMessage("assistant", turn.assistant))
    return messages
