"""The exchange's database sessions: PostgreSQL's with JIT compilation off (short statements that a large store's
estimates would otherwise have compiled on every request); SQLite's writer on the event loop, never waiting there."""
from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url


async def test_postgresql_sessions_compile_nothing_just_in_time(exchange):
    if exchange.db.is_sqlite:
        pytest.skip("a PostgreSQL setting")
    async with exchange.db.engine.connect() as conn:
        assert (await conn.execute(text("SHOW jit"))).scalar() == "off"


async def test_a_write_waits_for_another_process_lock_while_the_server_answers(client, exchange, settings):
    """SQLite: a transaction that holds the write lock runs on the event loop (exchange.store.sqlite_driver), but
    one that must wait for it, held by another process (the CLI, a restore), waits on its thread: the server goes
    on answering meanwhile, and the write proceeds once the lock is free."""
    if not exchange.db.is_sqlite:
        pytest.skip("SQLite's write lock")
    holder = sqlite3.connect(make_url(settings.database_url).database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        write = asyncio.create_task(client.post("/Patient", json={"resourceType": "Patient", "active": True}))
        for _ in range(50):
            await asyncio.sleep(0)
        assert (await client.get("/metadata")).status_code == 200
        assert not write.done()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (await write).status_code == 201
