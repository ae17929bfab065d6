"""Conversation history per session: the last N turns, in this process's memory (with a TTL
and a cap) or in Redis, where every instance of the service sees them."""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import SessionStoreUnavailable
from ..providers.base import ChatMessage
from ..settings import Settings

logger = logging.getLogger(__name__)

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


class RedisSessionStore:
    """Each session is a Redis list of JSON turns, trimmed to the last ``max_turns`` and
    expiring ``ttl_s`` after its last turn; appends are one MULTI/EXEC transaction."""

    PREFIX = "voice-orchestrator:session:"

    def __init__(self, url: str, *, max_turns: int, ttl_s: float, timeout_s: float = 2.0) -> None:
        self._max_turns = max_turns
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
        )

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as e:
            raise SessionStoreUnavailable("The session store is unreachable.") from e

    async def history(self, session_id: str) -> list[Turn]:
        try:
            items = await self._redis.lrange(self.PREFIX + session_id, 0, -1)
        except RedisError as e:
            raise SessionStoreUnavailable("The session store is unreachable.") from e
        turns = []
        for item in items:
            data = json.loads(item)
            turns.append(Turn(str(data["user"]), str(data["assistant"])))
        return turns

    async def append(self, session_id: str, turn: Turn) -> None:
        key = self.PREFIX + session_id
        item = json.dumps({"user": turn.user, "assistant": turn.assistant}, ensure_ascii=False)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                if self._max_turns:
                    pipe.rpush(key, item)
                    pipe.ltrim(key, -self._max_turns, -1)
                    pipe.pexpire(key, self._ttl_ms)
                else:
                    pipe.delete(key)
                await pipe.execute()
        except RedisError as e:
            raise SessionStoreUnavailable("The session store is unreachable.") from e

    async def aclose(self) -> None:
        await self._redis.aclose()


async def open_session_store(settings: Settings) -> SessionStore:
    """The store ``ORCH_SESSION_STORE`` names; a Redis store is pinged so that a wrong URL
    stops the service at start-up rather than at its first turn."""
    if settings.session_store == "memory":
        return MemorySessionStore(
            max_turns=settings.max_history_turns,
            ttl_s=settings.session_ttl_s,
            max_sessions=settings.max_stored_sessions,
        )
    store = RedisSessionStore(
        settings.session_store, max_turns=settings.max_history_turns, ttl_s=settings.session_ttl_s
    )
    try:
        await store.ping()
    except SessionStoreUnavailable:
        await store.aclose()
        where = urlsplit(settings.session_store)
        # Host and port only: the URL may carry a password.
        raise RuntimeError(
            f"ORCH_SESSION_STORE: no Redis answers at {where.hostname}:{where.port or 6379}"
        ) from None
    logger.info("session store ready", extra={"store": "redis"})
    return store


def build_context(system_prompt: str, turns: list[Turn]) -> list[ChatMessage]:
    """The messages that precede a new user utterance."""
    messages = [ChatMessage("system", system_prompt)] if system_prompt else []
    for turn in turns:
        messages.append(ChatMessage("user", turn.user))
        if turn.assistant:  # empty when the user interrupted before any of the reply was heard
            messages.append(ChatMessage("assistant", turn.assistant))
    return messages
