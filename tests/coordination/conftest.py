"""Coordination tests use the referral tests' world (directory, partner clients, referral transactions), a
coordinating organisation (the world's `other` NGO) with a coordinator client, and the store's clock held still."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from exchange.store import clock as store_clock
from tests.referral.conftest import As, as_, http, ids, make_referral  # noqa: F401 - fixtures shared

SENT = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)

__all__ = ["As"]


@pytest.fixture
def clock(monkeypatch):
    """The store's clock (exchange.store.clock.utcnow) at SENT; `clock.set(moment)` moves it."""
    class Clock:
        now = SENT

        def set(self, moment: datetime) -> None:
            self.now = moment

    held = Clock()
    monkeypatch.setattr(store_clock, "utcnow", lambda: held.now)
    return held


@pytest.fixture
async def coordinator(make_client, ids, exchange):
    exchange.settings.coordinating_organization = ids["other"]
    return await make_client(ids["other"], role="coordinator", scopes="system/Organization.rs")
