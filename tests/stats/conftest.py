"""Fixtures for statistics tests: a simulated clock for the store (the times the exchange records each step) and
referrals played through the real FHIR API."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from exchange.referral import codes
from tests.referral import world


STATS = "http://127.0.0.1:8080/stats/referrals"
JAN = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
FEB = datetime(2026, 2, 3, 9, 0, tzinfo=timezone.utc)


class Clock:
    """The store's clock (`exchange.store.clock.utcnow`), moved by the test: no sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now


@pytest.fixture
def clock(monkeypatch) -> Clock:  # noqa: ANN001
    found = Clock(datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc))
    monkeypatch.setattr("exchange.store.clock.utcnow", found)
    return found


class Referrals:
    """Referrals from the hotline to the shelter, sent and answered at the clock's times (by the exchange itself,
    which the Task state table does not hold to its parties: statistics are about what was stored when)."""

    def __init__(self, http, ids: dict, clock: Clock) -> None:  # noqa: ANN001
        self.http, self.ids, self.clock = http, ids, clock

    async def send(self, at: datetime, priority: str = "urgent") -> str:
        self.clock.set(at)
        bundle = world.referral_bundle(self.ids, [f"HealthcareService/{self.ids['svc-shelter']}"],
                                       request_extra={"priority": priority})
        r = await self.http.post("", json=bundle)
        assert r.status_code == 200, r.text
        return world.created_ids(r.json())["Task"]

    async def move(self, task_id: str, at: datetime, status: str, reason: dict | None = None,
                   **changes) -> None:  # noqa: ANN003
        self.clock.set(at)
        current = (await self.http.get(f"/Task/{task_id}")).json()
        body = dict(current, status=status, **changes)
        if reason is not None:
            body["statusReason"] = reason
        r = await self.http.put(f"/Task/{task_id}", json=body)
        assert r.status_code == 200, r.text

    async def answered(self, at: datetime, status: str, after: timedelta, **kwargs) -> str:  # noqa: ANN003
        task_id = await self.send(at, **kwargs)
        reason = declined("no-capacity", "no room tonight") if status == "rejected" else None
        await self.move(task_id, at + after, status, reason)
        return task_id


@pytest.fixture
async def referrals(client, clock) -> Referrals:  # noqa: ANN001
    ids = await world.directory(client)
    return Referrals(client, ids, clock)


@pytest.fixture
async def two_months(referrals) -> Referrals:  # noqa: ANN001
    """The data set of the report tests. January: 10 accepted after 2 hours, 3 declined (a small cell); February:
    12 accepted and 9 declined after 4 hours (every decline coded no-capacity, with words of its own)."""
    for i in range(10):
        await referrals.answered(JAN + timedelta(minutes=i), "accepted", timedelta(hours=2))
    for i in range(3):
        await referrals.answered(JAN + timedelta(minutes=20 + i), "rejected", timedelta(hours=2))
    for i in range(12):
        await referrals.answered(FEB + timedelta(minutes=i), "accepted", timedelta(hours=4))
    for i in range(9):
        await referrals.answered(FEB + timedelta(minutes=20 + i), "rejected", timedelta(hours=4))
    return referrals


def declined(code: str, text: str | None = None) -> dict:
    """A statusReason coded from gbv-referral-outcome (the ValueSets of task_states.REASON_VALUE_SETS)."""
    return {"coding": [{"system": codes.REFERRAL_OUTCOME, "code": code}], **({"text": text} if text else {})}


OUTCOME = codes.REFERRAL_OUTCOME
ACKNOWLEDGEMENT_DUE = f"{codes.BASE}/StructureDefinition/acknowledgement-due"
CONSENT_WITHDRAWN = {"coding": [{"system": codes.REFERRAL_CODES, "code": codes.CONSENT_WITHDRAWN}],
                     "text": "she withdrew her consent"}
