"""When no database connection can be had (every one of the pool in use past `database_pool_timeout`), a request is
answered 503 with Retry-After and an OperationOutcome (transient), not a 500 incident, and changes nothing; once a
connection comes free the exchange serves again."""
from __future__ import annotations

import contextlib

import pytest

from exchange.store.engine import PoolTimeout
from tests.fhir_checks import assert_outcome

TIMEOUT = 0.3


@pytest.fixture
def settings(settings):  # noqa: ANN001, ANN201
    return settings.model_copy(update={"database_pool_size": 2, "database_pool_timeout": TIMEOUT})


async def _hold_every_connection(stack: contextlib.AsyncExitStack, db) -> int:  # noqa: ANN001
    """Take the connections `db.read()` hands out until one more waits the pool's timeout and fails."""
    for held in range(100):
        try:
            await stack.enter_async_context(db.read())
        except PoolTimeout:
            return held
    raise AssertionError("the pool never ran out")


async def test_a_request_finding_no_connection_is_answered_503_and_changes_nothing(make_org, make_client, exchange):
    partner = await make_client(await make_org())
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:case", "value": "BUSY-1"}]}
    async with contextlib.AsyncExitStack() as stack:
        held = await _hold_every_connection(stack, exchange.db)
        assert held >= 1
        for r in (await partner.get("/Organization"), await partner.post("/Patient", json=patient)):
            body = assert_outcome(r, 503, text="retry")
            assert body["issue"][0]["code"] == "transient" and r.headers["retry-after"] == "5"
            assert "incident" not in r.text
    assert (await partner.get("/Organization")).status_code == 200
    found = (await partner.get("/Patient", params={"identifier": "urn:case|BUSY-1"})).json()
    assert found["total"] == 0
    assert (await partner.post("/Patient", json=patient)).status_code == 201


async def test_sqlite_a_request_waiting_past_the_timeout_for_the_write_lock_is_503(make_org, make_client, exchange):
    """SQLite: a process has one write lock; a request that needs it and finds it held past the pool's timeout (a
    long write of another unit) is answered 503: a write, and a read too, whose record of the disclosure must be
    committed before its answer (so it answers nothing)."""
    if not exchange.db.is_sqlite:
        pytest.skip("SQLite's write lock")
    partner = await make_client(await make_org())
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:case", "value": "BUSY-2"}]}
    async with exchange.db.transaction():  # (holds the write lock)
        body = assert_outcome(await partner.post("/Patient", json=patient), 503, text="retry")
        assert body["issue"][0]["code"] == "transient"
        assert_outcome(await partner.get("/Organization"), 503, text="retry")
    assert (await partner.get("/Patient", params={"identifier": "urn:case|BUSY-2"})).json()["total"] == 0
    assert (await partner.post("/Patient", json=patient)).status_code == 201
