"""Amending the last stored turn in a real Redis (what a truncated answer's listener heard)."""

from __future__ import annotations

from voice_orchestrator.pipeline.sessions import RedisSessionStore, Turn


async def test_amend_last_replaces_only_the_most_recent_turn(redis_url: str) -> None:
    store = RedisSessionStore(redis_url, max_turns=10, ttl_s=60)
    try:
        assert not await store.amend_last("amend", Turn("q", "a"))
        await store.append("amend", Turn("q1", "a1", at=1.0))
        await store.append("amend", Turn("q2", "a2", at=2.0))
        assert await store.amend_last("amend", Turn("q2", "a", interrupted=True, at=3.0))
        history = await store.history("amend")
        assert history == [Turn("q1", "a1"), Turn("q2", "a", interrupted=True)]
        assert history[-1].at == 3.0
    finally:
        await store.delete("amend")
        await store.aclose()
