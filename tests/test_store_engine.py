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


async def _commit_rows(db, count: int) -> None:  # noqa: ANN001
    async with db.transaction() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS wal_probe (n INTEGER)"))
    for n in range(count):
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO wal_probe (n) VALUES (:n)"), {"n": n})


async def test_sqlite_checkpoints_keep_the_wal_bounded_and_shutdown_leaves_none(tmp_path):
    """SQLite's WAL checkpoints run off the event loop (exchange.store.sqlite_checkpoint), not in COMMIT: they still
    copy the WAL into the database file and let it start again, so a thousand commits (a page each) leave a WAL of a
    few checkpoints' pages, not a thousand; and once the Database is disposed nothing is left in a WAL."""
    from exchange.store.engine import Database
    from exchange.store.sqlite_checkpoint import EVERY

    path = tmp_path / "wal.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await _commit_rows(db, 20 * EVERY)
        wal = path.with_name("wal.db-wal")
        page_size = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
        assert wal.stat().st_size < 8 * EVERY * page_size  # (without checkpoints: 20 * EVERY pages and more)
    finally:
        await db.dispose()
    assert not wal.exists() or wal.stat().st_size == 0
    assert sqlite3.connect(path).execute("SELECT count(*) FROM wal_probe").fetchone()[0] == 20 * EVERY


async def test_sqlite_writes_keep_their_connection_while_reads_interleave(tmp_path):
    """SQLite: a connection's page cache lasts only while no other connection writes, so the writers of a process
    write on one connection and `Database.read` (the bearer check's statement, beside every request) and
    `Database.reading` (a unit that changes nothing) read on connections of their own: reads begun before, during
    and after each write leave the writers theirs."""
    from exchange.store import direct
    from exchange.store.engine import Database
    from sqlalchemy import column, select, table

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}")
    probe = direct.Statement(select(column("n")).select_from(table("cache_probe")))
    try:
        async with db.transaction() as conn:
            await conn.execute(text("CREATE TABLE cache_probe (n INTEGER)"))
        writers, readers = set(), set()
        for n in range(6):
            async with db.read() as reading:
                await direct.fetch(reading, probe, {})
                readers.add(id(reading.sync_connection.connection.dbapi_connection))
                async with db.transaction() as conn:
                    await conn.execute(text("INSERT INTO cache_probe (n) VALUES (:n)"), {"n": n})
                    writers.add(id(conn.sync_connection.connection.dbapi_connection))
                    assert (await conn.execute(text("PRAGMA cache_size"))).scalar() < -2000  # (KiB: above the default)
            async with db.read() as reading:
                assert len(await direct.fetch(reading, probe, {})) == n + 1  # (what was committed, at once)
                readers.add(id(reading.sync_connection.connection.dbapi_connection))
            async with db.reading() as reading:  # (a unit that changes nothing: a deferred read transaction)
                assert len(await direct.fetch(reading, probe, {})) == n + 1
                readers.add(id(reading.sync_connection.connection.dbapi_connection))
        assert len(writers) == 1 and not writers & readers
    finally:
        await db.dispose()


async def test_sqlite_keeps_every_moment_in_one_text_form(client, exchange, settings, monkeypatch):
    """SQLite keeps a moment as text, compared and ordered as text: every write (exchange.store.direct's statements,
    whose conversion of datetimes is its own, and SQLAlchemy's) writes SQLAlchemy's form, microseconds always
    included, so "...:05" and "...:05.000000" never both occur. A moment on the whole second and one just after."""
    if not exchange.db.is_sqlite:
        pytest.skip("SQLite's text moments")
    import re
    from datetime import datetime, timezone

    from sqlalchemy.dialects.sqlite import DATETIME

    form = DATETIME().bind_processor(exchange.db.engine.dialect)
    moments = [datetime(2026, 12, 3, 9, 30, 5, tzinfo=timezone.utc),
               datetime(2026, 12, 3, 9, 30, 5, 7, tzinfo=timezone.utc)]
    for moment in moments:
        monkeypatch.setattr("exchange.store.clock.utcnow", lambda moment=moment: moment)
        body = {"resourceType": "Patient", "active": True, "birthDate": "1990-02-03", "name": [{"family": "Row"}]}
        assert (await client.post("/Patient", json=body)).status_code == 201
    db = sqlite3.connect(make_url(settings.database_url).database)
    try:
        versions = [row[0] for row in db.execute("SELECT last_updated FROM resource UNION ALL "
                                                 "SELECT last_updated FROM resource_version UNION ALL "
                                                 "SELECT last_updated FROM search_index")]
        others = [v for row in db.execute("SELECT date_start, date_end FROM search_index UNION ALL "
                                          "SELECT recorded, recorded FROM audit_event") for v in row if v]
    finally:
        db.close()
    assert {form(m.replace(tzinfo=None)) for m in moments} == {"2026-12-03 09:30:05.000000",
                                                                "2026-12-03 09:30:05.000007"} == set(versions)
    assert len(versions) >= 4 and others, (versions, others)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", v) for v in others), others
