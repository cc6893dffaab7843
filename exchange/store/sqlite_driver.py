"""SQLite's driver under SQLAlchemy: aiosqlite, except that transactions run on the event loop, not on its thread.

aiosqlite runs each sqlite3 call on a thread of the connection's own and hands the result back to the event loop;
SQLAlchemy's adapter makes four such calls per statement (open a cursor, execute, fetch the rows, close the cursor).
Each is a wake-up of that thread and of the loop, and under load it waits for the GIL (up to the 5 ms switch
interval) and for the loop's turn, all while a writer holds the write lock that every other writer queues behind
(exchange.store.engine): a lifecycle's dozen write transactions made a critical section of a few hundred round trips.

So a transaction runs on the event loop, each statement a plain sqlite3 call, its COMMIT and ROLLBACK too:
- one begun with BEGIN IMMEDIATE holds the write lock (the process's writers queue on an asyncio lock before it).
  In WAL mode nothing makes its statements wait for another connection (readers never block the writer), so they
  cost their own work only: microseconds. A COMMIT appends to the WAL and nothing more: the WAL's checkpoints (the
  copy into the database file and its syncs) run on a thread of their own (exchange.store.sqlite_checkpoint),
  woken every so many write commits.
- one begun with a deferred BEGIN only reads (`Database.read`'s, when a statement there goes through SQLAlchemy;
  exchange.store.direct runs the bearer check's token state there without any, as its own snapshot). In WAL mode a
  reader takes a snapshot and waits for no writer; only the recovery of a WAL after a crash, run by the first
  connection that opens it, can make it wait.
- BEGIN IMMEDIATE itself runs on the loop if the write lock is free (tried with no busy wait); when another process
  (the CLI, a restore) holds it, on the thread, which waits for it up to `BUSY_TIMEOUT_MS`.
What remains on the thread (the connection's PRAGMAs, a waiting BEGIN IMMEDIATE) is one round trip a statement, not
four: execute, fetch every row (as SQLAlchemy's adapter does anyway), note the description, rowcount and lastrowid,
close the cursor. The pool's rollback of a connection given back after its COMMIT costs nothing (no transaction).
One statement at a time per connection either way (the adapter's mutex). The connection, its thread, errors and
the pool stay SQLAlchemy's aiosqlite dialect.
"""
from __future__ import annotations

import collections
from typing import Any

import aiosqlite
import sqlite3
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection, AsyncAdapt_aiosqlite_dbapi
from sqlalchemy.util.concurrency import await_

from exchange.store.sqlite_checkpoint import Checkpointer


BEGIN_WRITE = "BEGIN IMMEDIATE"
BEGIN_READ = "BEGIN"  # (deferred: only `Database.read`'s transactions, which never write)
READ_ONLY = "exchange_read_only"  # the execution option of `Database.read`'s connections
BUSY_TIMEOUT_MS = 60000  # how long a connection waits for the write lock another process holds
_NOTHING = (None, -1, None, ())


def _begin_now(conn: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE if the write lock is free now (False if another process holds it: wait on the thread)."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        conn.execute(BEGIN_WRITE)
        return True
    except sqlite3.OperationalError as error:
        if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
            return False
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> tuple:
    """On the connection's thread: the statement and everything SQLAlchemy reads of its cursor."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else ()
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


def begin_on_loop(adapted: Any, operation: str) -> bool:
    """BEGIN (deferred) or BEGIN IMMEDIATE as a plain sqlite3 call, when it needs no wait (exchange.store.engine's
    "begin" listener: no statement execution of SQLAlchemy's for it). False when it must wait for the lock another
    process holds, or failed: then it goes through SQLAlchemy and a cursor here (the thread; SQLAlchemy's errors)."""
    if not isinstance(adapted, _Connection) or adapted._on_loop or adapted._execute_mutex.locked():  # noqa: SLF001
        return False
    conn = adapted._connection._conn  # noqa: SLF001 - the sqlite3 connection
    try:
        if operation == BEGIN_READ:
            conn.execute(BEGIN_READ)
        elif not _begin_now(conn):
            return False
    except sqlite3.Error:
        return False
    adapted._on_loop, adapted._writing = True, operation == BEGIN_WRITE  # noqa: SLF001
    return True


def begin_ahead(adapted: Any, operation: str) -> bool:
    """`begin_on_loop` before SQLAlchemy's begin, which then only does its bookkeeping and tells its listeners
    (exchange.store.engine's "begin" listener asks `begun_ahead`): so a transaction can begin without a pass through
    SQLAlchemy's greenlet (`Database`'s held connections). False as `begin_on_loop` (then begin as before)."""
    if not begin_on_loop(adapted, operation):
        return False
    adapted._ahead = True  # noqa: SLF001
    return True


def begun_ahead(adapted: Any) -> bool:
    """(The "begin" listener:) whether `begin_ahead` began the transaction SQLAlchemy begins now (asked once)."""
    if isinstance(adapted, _Connection) and adapted._ahead:  # noqa: SLF001
        adapted._ahead = False  # noqa: SLF001
        return True
    return False


def ends_on_loop(adapted: Any) -> bool:
    """Whether the COMMIT or ROLLBACK of the connection's transaction is a plain sqlite3 call on the loop (or there
    is nothing to end), so SQLAlchemy's end of it needs no pass through its greenlet."""
    if not isinstance(adapted, _Connection) or adapted._execute_mutex.locked():  # noqa: SLF001
        return False
    connection = adapted._connection._connection  # noqa: SLF001 - the sqlite3 connection (None once closed)
    return connection is not None and (adapted._on_loop or not connection.in_transaction)  # noqa: SLF001


def on_loop(adapted: Any, reading: bool = False) -> bool:
    """Whether a statement may run on the loop now (exchange.store.direct then runs it with `run_on_loop`) on the
    connection SQLAlchemy's pool holds (`dbapi_connection`): in a transaction that runs on the loop, or, `reading`
    (a statement that only reads), in none (its own snapshot: in WAL mode a reader waits for nobody)."""
    if not isinstance(adapted, _Connection) or adapted._execute_mutex.locked():  # noqa: SLF001
        return False
    if adapted._on_loop:  # noqa: SLF001
        return True
    connection = adapted._connection._connection  # noqa: SLF001 - the sqlite3 connection (None once closed)
    return reading and connection is not None and not connection.in_transaction


def run_on_loop(adapted: "_Connection", operation: str, parameters: Any, many: bool) -> tuple[int, Any]:
    """A statement of such a transaction as a plain sqlite3 call: (rowcount, the rows)."""
    _, rowcount, _, rows = _run(adapted._connection._conn, operation, parameters, many)  # noqa: SLF001
    return rowcount, rows


class _Cursor:
    """A DB-API cursor over results fetched in one round trip (what SQLAlchemy's executions read of a cursor)."""

    server_side = False
    __slots__ = ("_adapted", "description", "rowcount", "lastrowid", "arraysize", "_rows")

    def __init__(self, adapted: "_Connection") -> None:
        self._adapted = adapted
        self.description = None
        self.rowcount = -1
        self.lastrowid = None
        self.arraysize = 1
        self._rows: collections.deque = collections.deque()

    async def _execute(self, operation: str, parameters: Any, many: bool) -> None:
        adapted = self._adapted
        async with adapted._execute_mutex:  # noqa: SLF001 - one statement at a time on a connection, as before
            connection = adapted._connection  # noqa: SLF001 - the aiosqlite connection
            conn = connection._conn  # noqa: SLF001 - the sqlite3 connection
            if adapted._on_loop:  # noqa: SLF001 - in a transaction begun below: nothing makes it wait
                result = _run(conn, operation, parameters, many)
            elif operation == BEGIN_READ:  # a read-only transaction: in WAL mode a reader waits for nobody
                result = _run(conn, operation, parameters, many)
                adapted._on_loop = True  # noqa: SLF001 - (on the loop until its COMMIT, as a writer's)
            elif operation == BEGIN_WRITE:
                result = _NOTHING if _begin_now(conn) else \
                    await connection._execute(_run, conn, operation, parameters, many)  # noqa: SLF001
                adapted._on_loop = adapted._writing = True  # noqa: SLF001
            else:
                result = await connection._execute(_run, conn, operation, parameters, many)  # noqa: SLF001
        self.description, self.rowcount, self.lastrowid, rows = result
        self._rows = collections.deque(rows)

    def execute(self, operation: str, parameters: Any = None) -> None:
        try:
            await_(self._execute(operation, parameters, False))
        except Exception as error:  # noqa: BLE001 - as SQLAlchemy's adapter: the DB-API error, or a closed connection
            self._adapted._handle_exception(error)  # noqa: SLF001

    def executemany(self, operation: str, seq_of_parameters: Any) -> None:
        try:
            await_(self._execute(operation, seq_of_parameters, True))
        except Exception as error:  # noqa: BLE001
            self._adapted._handle_exception(error)  # noqa: SLF001

    def setinputsizes(self, *inputsizes: Any) -> None:
        pass

    async def _async_soft_close(self) -> None:
        """(SQLAlchemy's async results call it to close the cursor and keep the rows: they are kept already.)"""

    def close(self) -> None:
        self._rows.clear()

    def __iter__(self):  # noqa: ANN204
        while self._rows:
            yield self._rows.popleft()

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list:
        rows = self._rows
        return [rows.popleft() for _ in range(min(size or self.arraysize, len(rows)))]

    def fetchall(self) -> list:
        rows = list(self._rows)
        self._rows.clear()
        return rows


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_on_loop", "_writing", "_ahead")
    _cursor_cls = _Cursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._on_loop = False  # in a transaction that runs on the loop (BEGIN IMMEDIATE or BEGIN), until it ends
        self._writing = False  # ... begun with BEGIN IMMEDIATE
        self._ahead = False  # ... begun by `begin_ahead`, SQLAlchemy's begin not yet told

    def commit(self) -> None:
        self._end("commit")

    def rollback(self) -> None:
        self._end("rollback")

    def _end(self, how: str) -> None:
        """COMMIT or ROLLBACK: on the event loop as the transaction's statements, else on the thread; nothing at all
        outside a transaction."""
        on_loop, writing, self._on_loop, self._writing, self._ahead = self._on_loop, self._writing, False, False, False
        connection = self._connection._connection  # noqa: SLF001 - the sqlite3 connection (None once closed)
        if connection is not None and not connection.in_transaction:
            return  # nothing to end: the pool's rollback of a connection given back after its COMMIT
        if not on_loop:
            super().commit() if how == "commit" else super().rollback()
            return
        try:
            getattr(connection, how)()
        except Exception as error:  # noqa: BLE001
            self._handle_exception(error)
        if writing and how == "commit" and self.dbapi.checkpointer is not None:
            self.dbapi.checkpointer.committed()  # (the WAL's checkpoints run on a thread: sqlite_checkpoint)


class _Driver(AsyncAdapt_aiosqlite_dbapi):
    """The DB-API module SQLAlchemy's aiosqlite dialect is given (`create_async_engine(..., module=driver())`), one
    per engine; `checkpointer`: the engine's WAL checkpoints, told of each write COMMIT (set by Database)."""

    checkpointer: Checkpointer | None = None

    def connect(self, *arg: Any, **kw: Any) -> _Connection:
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # noqa: SLF001 - as SQLAlchemy's adapter does
        return _Connection(self, await_(connection))


def driver() -> _Driver:
    return _Driver(aiosqlite, sqlite3)
