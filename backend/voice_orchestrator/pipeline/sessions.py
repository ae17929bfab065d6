"""Conversation history per session: the last N turns, in this process's memory (with a TTL
and a cap) or in Redis, where every instance of the service sees them.

A session belongs to whoever made it: with API keys, the store key is the owner's (a hash of
the API key) plus the id, so another key naming the same id reaches a different, empty session
and never the owner's history.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from ..errors import SessionStoreUnavailable
from ..providers.base import ChatMessage
from ..settings import Settings
from .tool_loop import ToolExchange, round_messages

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Turn:
    user: str
    assistant: str
    interrupted: bool = False
    at: float = field(default_factory=time.time, compare=False)  # Unix time it was stored
    # The tool calls the answer was built on, so that a follow-up question can use them.
    tools: tuple[ToolExchange, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionInfo:
    created_at: float  # Unix time
    expires_at: float
    turns: list[Turn]


def new_session_id() -> str:
    """An unguessable id (128 random bits) matching ``SESSION_ID``."""
    return secrets.token_urlsafe(16)


def owner_of(api_key: bytes | None) -> str:
    """The owner name of sessions made with ``api_key``: a hash, never the key."""
    if not api_key:
        return ""
    return hashlib.sha256(b"voice-orchestrator session owner:" + api_key).hexdigest()[:24]


def store_key(owner: str, session_id: str) -> str:
    return f"{owner}:{session_id}" if owner else session_id


class SessionStore(Protocol):
    """Keys are ``store_key(owner, session_id)``."""

    async def history(self, key: str) -> list[Turn]:
        """The stored turns of a session, oldest first; empty for an unknown session."""
        ...

    async def append(self, key: str, turn: Turn) -> None:
        """Adds a turn, keeping only the most recent ones."""
        ...

    async def amend_last(self, key: str, turn: Turn) -> bool:
        """Replaces the most recent turn (what the listener heard of it became known after
        it was stored); False when the session holds no turn."""
        ...

    async def create(self, key: str) -> SessionInfo:
        """Makes an empty session (or returns the existing one)."""
        ...

    async def info(self, key: str) -> SessionInfo | None:
        """The session with its turns; None when there is none."""
        ...

    async def delete(self, key: str) -> bool:
        """Erases the session at once; False when there was none."""
        ...

    async def aclose(self) -> None: ...


class MemorySessionStore:
    """Per-process store. Sessions expire ``ttl_s`` after their last turn; beyond
    ``max_sessions`` the least recently used one is dropped."""

    def __init__(self, *, max_turns: int, ttl_s: float, max_sessions: int) -> None:
        self._max_turns = max_turns
        self._ttl_s = ttl_s
        self._max_sessions = max_sessions
        # key -> (created_at, last used (monotonic), last used (Unix time), turns)
        self._sessions: OrderedDict[str, tuple[float, float, float, list[Turn]]] = OrderedDict()

    def _entry(self, key: str) -> tuple[float, float, float, list[Turn]] | None:
        entry = self._sessions.get(key)
        if entry is not None and time.monotonic() - entry[1] > self._ttl_s:
            del self._sessions[key]
            return None
        return entry

    def _put(self, key: str, created_at: float, turns: list[Turn]) -> None:
        self._sessions[key] = (created_at, time.monotonic(), time.time(), turns)
        self._sessions.move_to_end(key)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)

    async def history(self, key: str) -> list[Turn]:
        entry = self._entry(key)
        return [] if entry is None else list(entry[3])

    async def append(self, key: str, turn: Turn) -> None:
        entry = self._entry(key)
        turns = [] if entry is None else list(entry[3])
        turns.append(turn)
        turns = turns[-self._max_turns :] if self._max_turns else []
        self._put(key, time.time() if entry is None else entry[0], turns)

    async def amend_last(self, key: str, turn: Turn) -> bool:
        entry = self._entry(key)
        if entry is None or not entry[3]:
            return False
        self._put(key, entry[0], [*entry[3][:-1], turn])
        return True

    async def create(self, key: str) -> SessionInfo:
        entry = self._entry(key)
        if entry is None:
            self._put(key, time.time(), [])
        info = await self.info(key)
        assert info is not None
        return info

    async def info(self, key: str) -> SessionInfo | None:
        entry = self._entry(key)
        if entry is None:
            return None
        created_at, _, used_at, turns = entry
        return SessionInfo(created_at, used_at + self._ttl_s, list(turns))

    async def delete(self, key: str) -> bool:
        return self._sessions.pop(key, None) is not None

    async def aclose(self) -> None:
        self._sessions.clear()

    def __len__(self) -> int:
        return len(self._sessions)


class RedisSessionStore:
    """Each session is a Redis list of JSON turns, trimmed to the last ``max_turns``, beside a
    key holding its creation time; both expire ``ttl_s`` after the last turn. Appends are one
    MULTI/EXEC transaction."""

    PREFIX = "voice-orchestrator:session:"
    CREATED = "voice-orchestrator:session-created:"

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

    async def history(self, key: str) -> list[Turn]:
        try:
            items = await self._redis.lrange(self.PREFIX + key, 0, -1)
        except RedisError as e:
            raise SessionStoreUnavailable("The session store is unreachable.") from e
        return [_turn(item) for item in items]

    async def append(self, key: str, turn: Turn) -> None:
        item = _item(turn)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self.CREATED + key, time.time(), px=self._ttl_ms, nx=True)
                pipe.pexpire(self.CREATED + key, self._ttl_ms)
                if self._max_turns:
                    pipe.rpush(self.PREFIX + key, item)
                    pipe.ltrim(self.PREFIX + key, -self._max_turns, -1)
                    pipe.pexpire(self.PREFIX + key, self._ttl_ms)
                else:
                    pipe.delete(self.PREFIX + key)
                await pipe.execute()
        except RedisError as e:
            raise SessionStoreUnavailable("The session store is unreachable.") from e

    async def amend_last(self, key: str, turn: Turn) -> bool:
        try:
            await self._redis.lset(self.PREFIX + key, -1, _item(turn))
        except ResponseError:  # no such list, or an empty one
            return False
        except RedisError as e:
            raise SessionStoreUnavailable("The session store is unreachable.") from e
        return True

    async def create(self, key: str) -> SessionInfo:
        try:
            await self._redis.set(self.CREATED + key, time.time(), px=self._ttl_ms, nx=True)
        except RedisError as e:
            raise SessionStoreUnavailable("The session store is unreachable.") from e
        info = await self.info(key)
        assert info is not None
        return info

    async def info(self, key: str) -> SessionInfo | None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(self.CREATED + key)
                pipe.pttl(self.CREATED + key)
                pipe.lrange(self.PREFIX + key, 0, -1)
                created, ttl_ms, items = await pipe.execute()
        except RedisError as e:
            raise SessionStoreUnavailable("The session store is unreachable.") from e
        if created is None and not items:
            return None
        now = time.time()
        expires_at = now + (ttl_ms / 1000 if ttl_ms and ttl_ms > 0 else self._ttl_ms / 1000)
        return SessionInfo(float(created or now), expires_at, [_turn(item) for item in items])

    async def delete(self, key: str) -> bool:
        try:
            removed = await self._redis.delete(self.PREFIX + key, self.CREATED + key)
        except RedisError as e:
            raise SessionStoreUnavailable("The session store is unreachable.") from e
        return bool(removed)

    async def aclose(self) -> None:
        await self._redis.aclose()


def _item(turn: Turn) -> str:
    return json.dumps(
        {
            "user": turn.user,
            "assistant": turn.assistant,
            "interrupted": turn.interrupted,
            "at": turn.at,
            "tools": [[t.call_id, t.name, t.arguments, t.result] for t in turn.tools],
        },
        ensure_ascii=False,
    )


def _turn(item: str | bytes) -> Turn:
    data = json.loads(item)
    return Turn(
        str(data["user"]),
        str(data["assistant"]),
        bool(data.get("interrupted", False)),
        float(data.get("at", 0.0)),
        tuple(ToolExchange(*map(str, item)) for item in data.get("tools", [])),
    )


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


def build_context(
    system_prompt: str, turns: list[Turn], *, max_chars: int | None = None
) -> list[ChatMessage]:
    """The messages that precede a new user utterance: the most recent turns whose text fits
    in ``max_chars`` (the history is bounded in characters as well as turns)."""
    messages = [ChatMessage("system", system_prompt)] if system_prompt else []
    if max_chars is not None:
        kept: list[Turn] = []
        used = 0
        for turn in reversed(turns):
            used += len(turn.user) + len(turn.assistant)
            if used > max_chars:
                break
            kept.append(turn)
        turns = kept[::-1]
    for turn in turns:
        messages.append(ChatMessage("user", turn.user))
        if turn.tools:
            messages.extend(round_messages("", turn.tools))
        if turn.assistant:  # empty when the user interrupted before any of the reply was heard
            messages.append(ChatMessage("assistant", turn.assistant))
    return messages
