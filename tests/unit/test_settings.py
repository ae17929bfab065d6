"""Start-up configuration errors name the variable to fix."""

from __future__ import annotations

import pytest

from ..conftest import make_settings


@pytest.mark.parametrize("store", ["postgres://x", "redis", ""])
def test_unknown_session_stores_fail_at_start_up(store: str) -> None:
    with pytest.raises(ValueError, match="ORCH_SESSION_STORE"):
        make_settings(session_store=store)


@pytest.mark.parametrize("store", ["memory", "redis://localhost:6379/0", "rediss://h:6380/1"])
def test_known_session_stores_are_accepted(store: str) -> None:
    assert make_settings(session_store=store).session_store == store
