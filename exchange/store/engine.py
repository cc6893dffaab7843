"""The database: one async engine for SQLite (embedded default) or PostgreSQL (production).

SQLite allows one writer at a time: every transaction starts with BEGIN IMMEDIATE and, inside one process, an
asyncio lock queues writers so they never spin on the busy handler. PostgreSQL runs READ COMMITTED transactions and
relies on row locks and constraints where order matters.

Both engines hide SQL parameters in their errors (`hide_parameters`): a failed statement's message would otherwise
carry case codes and names into whatever logs it.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager, nullcontext
from typing import AsyncIterator

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def _sqlite_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 60}, hide_parameters=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001
        dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """Owns the engine; hands out one connection per unit of work, inside one transaction."""

    def __init__(self, url: str, pool_size: int = 10):
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        if self.is_sqlite:
            self.engine = _sqlite_engine(url)
            self._write_lock: asyncio.Lock | None = asyncio.Lock()
        else:
            self.engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                                              hide_parameters=True)
            self._write_lock = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One database transaction: committed when the block ends, rolled back if it raises."""
        async with (self._write_lock or nullcontext()):
            async with self.engine.begin() as conn:
                yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()
