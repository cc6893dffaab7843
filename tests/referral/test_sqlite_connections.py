"""SQLite: the connections requests use stay open between them (exchange.store.engine `_Held`): a burst of requests
beyond what the pool keeps idle neither waits for a connection that is never given back nor opens connections only
to close them again (each a thread, a file, the schema read and seven PRAGMAs)."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event


async def _reads(http, path: str, headers: dict, count: int) -> list[int]:  # noqa: ANN001
    answers = await asyncio.wait_for(asyncio.gather(*(http.get(path, headers=headers) for _ in range(count))), 20)
    return [r.status_code for r in answers]


async def test_sqlite_requests_reuse_their_connections(http, as_, ids, make_referral, exchange):
    if not exchange.db.is_sqlite:
        pytest.skip("SQLite's connections")
    ref = await make_referral()
    shelter = as_(ids["shelter"])
    path = f"/Task/{ref['Task']}"
    # more requests at once than either pool holds (5 idle, 15 in all): each a bearer check and a read-only unit
    assert await _reads(http, path, shelter, 40) == [200] * 40
    opened = []
    engines = {exchange.db.engine.sync_engine, exchange.db._reader.sync_engine}  # noqa: SLF001
    listen = [(engine, lambda *args: opened.append(args)) for engine in engines]
    for engine, on_connect in listen:
        event.listen(engine, "connect", on_connect)
    try:
        assert await _reads(http, path, shelter, 40) == [200] * 40
        assert (await http.put(path, json=dict((await http.get(path, headers=shelter)).json(), status="accepted"),
                               headers={**shelter, "If-Match": 'W/"1"'})).status_code == 200
    finally:
        for engine, on_connect in listen:
            event.remove(engine, "connect", on_connect)
    assert opened == []
