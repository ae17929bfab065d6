"""Start-up configuration errors name the variable to fix."""

from __future__ import annotations

import pytest

from ..conftest import make_settings


@pytest.mark.parametrize("store", ["redis://localhost:6379/0", "postgres://x"])
def test_unavailable_session_stores_fail_at_start_up(store: str) -> None:
    with pytest.raises(ValueError, match="ORCH_SESSION_STORE"):
        make_settings(session_store=store)
