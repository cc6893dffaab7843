"""PostgreSQL: a process keeps the connections it opens, up to `database_pool_size`, for the next requests; more
requests in flight than that wait for one instead of each opening and closing a connection of its own (which cost
PostgreSQL a backend each: 754 sessions in one `make bench` of one process)."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event

POOL = 4


@pytest.fixture
def settings(settings):  # noqa: ANN001, ANN201
    return settings.model_copy(update={"database_pool_size": POOL})


async def _reads(http, path: str, headers: dict, count: int) -> list[int]:  # noqa: ANN001
    answers = await asyncio.wait_for(asyncio.gather(*(http.get(path, headers=headers) for _ in range(count))), 30)
    return [r.status_code for r in answers]


async def test_bursts_past_the_pool_open_no_connection_after_the_first(http, as_, ids, make_referral, exchange):
    if exchange.db.is_sqlite:
        pytest.skip("PostgreSQL's connections")
    ref = await make_referral()
    shelter, path = as_(ids["shelter"]), f"/Task/{ref['Task']}"
    opened: list[object] = []

    def on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        opened.append(dbapi_connection)

    pool = exchange.db.engine.sync_engine.pool
    event.listen(pool, "connect", on_connect)
    try:
        assert await _reads(http, path, shelter, 3 * POOL) == [200] * (3 * POOL)  # (may open what the pool lacks)
        first = len(opened)
        for _ in range(3):
            assert await _reads(http, path, shelter, 3 * POOL) == [200] * (3 * POOL)
    finally:
        event.remove(pool, "connect", on_connect)
    assert len(opened) == first, f"{len(opened) - first} connections opened after the first burst"
    assert pool.checkedin() + pool.checkedout() <= POOL
