"""The database: one async engine for SQLite (embedded default) or PostgreSQL (production).

SQLite allows one writer at a time: every transaction that may write starts with BEGIN IMMEDIATE and, inside one
process, an asyncio lock queues writers so they never spin on the busy handler; a statement that only reads (`read`)
is its own snapshot outside that queue (in WAL mode a reader neither waits for the writer nor holds it up). Both
run on the event loop, not on aiosqlite's thread (exchange.store.sqlite_driver says why).
SQLite's durability is WAL with synchronous=NORMAL: a commit is appended to the WAL and synced at the next checkpoint,
not at each commit (the checkpoints run off the event loop: exchange.store.sqlite_checkpoint). That cannot corrupt
the database, and a crash of the process loses nothing committed; a power loss or an OS crash can lose the last
transactions before the WAL was synced, each whole, with its audit record (a change and its record are one
transaction). FULL would sync each commit (0.3 ms here, on the event loop, inside the write lock); PostgreSQL, the production store, keeps synchronous_commit on. PostgreSQL runs READ COMMITTED
transactions and relies on row locks and constraints where order matters.

Both engines hide SQL parameters in their errors (`hide_parameters`): a failed statement's message would otherwise
carry case codes and names into whatever logs it.
"""
from __future__ import annotations

import asyncio
import collections
import errno
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Mapping

from asyncpg.exceptions import CannotConnectNowError, TooManyConnectionsError
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import greenlet_spawn

from exchange.store import direct, sqlite_driver
from exchange.store.sqlite_checkpoint import Checkpointer


_READ_ONLY = sqlite_driver.READ_ONLY  # the execution option of `Database.read`'s connections
# SQLite's page cache per connection (SQLite's default is 2,000 KiB). A write transaction of the exchange changes
# 11-80 pages of B-trees whose keys are random (resource ids, audit ids), so the default cache held too few of the
# pages the next one needs and it read them again from the WAL or the file. A cache lasts across transactions only
# while no other connection writes: the writers of a process queue on one lock and the Database holds the
# connection given back last for the next (`_Held`), so they write on one connection, and `Database.read` and
# `reading` read on connections of their own (a statement journal, the pages a statement changed kept to undo it
# alone, stays in memory too: temp_store; it spilled to a temporary file past 64 KiB, and nothing durable is in it).
CACHE_KIB = 32768


def _sqlite_engine(url: str) -> AsyncEngine:
    # check_same_thread off: statements of a transaction that holds the write lock run on the event loop, the others
    # on the connection's aiosqlite thread (exchange.store.sqlite_driver), one at a time either way.
    engine = create_async_engine(url, connect_args={"timeout": sqlite_driver.BUSY_TIMEOUT_MS / 1000,
                                                    "check_same_thread": False},
                                 hide_parameters=True, module=sqlite_driver.driver(),
                                 # (the connection given back last is taken next: its page cache is the freshest)
                                 **({} if _url_in_memory(make_url(url)) else {"pool_use_lifo": True}))

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001
        dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # (not in COMMIT, on the loop: exchange.store.sqlite_checkpoint)
        cursor.execute(f"PRAGMA busy_timeout={sqlite_driver.BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        cursor.execute("PRAGMA temp_store=MEMORY")  # (statement journals: see CACHE_KIB)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        operation = sqlite_driver.BEGIN_READ if conn.get_execution_options().get(_READ_ONLY) else \
            sqlite_driver.BEGIN_WRITE
        adapted = conn.connection.dbapi_connection
        if not (sqlite_driver.begun_ahead(adapted) or sqlite_driver.begin_on_loop(adapted, operation)):
            conn.exec_driver_sql(operation)  # (it waits for another process's lock, on the thread)
            return
        dispatch = conn.dispatch.before_cursor_execute
        if dispatch:  # (listeners see it as they see every statement)
            dispatch(conn, None, operation, (), None, False)

    return engine


def _in_memory(database: str | None) -> bool:
    """(SQLAlchemy gives an in-memory SQLite database one connection, StaticPool: no WAL, no pool order.)"""
    return not database or database == ":memory:" or "mode=memory" in database


def _url_in_memory(url) -> bool:  # noqa: ANN001
    return _in_memory(url.database) or url.query.get("mode") == "memory"


def _folder_exists(url) -> None:  # noqa: ANN001
    """SQLite: the database file's folder must exist (SQLite creates the file, not its folder). Said here, before a
    connection is tried: aiosqlite's thread for a connection that failed to open reports to the event loop after
    the failure, which a command that failed has closed by then."""
    database = url.database or ""
    if _url_in_memory(url) or database.startswith("file:"):
        return
    folder = Path(database).parent
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, "unable to open database file: its folder does not exist", str(folder))


def _checkpointer(engine: AsyncEngine, write_lock: asyncio.Lock) -> Checkpointer | None:
    """The WAL checkpoints of a database file (none in memory), told of each write COMMIT by the driver."""
    args, kwargs = engine.dialect.create_connect_args(engine.url)  # (what the driver's connections open)
    database = args[0] if args else kwargs.get("database", "")
    if _in_memory(database):
        return None
    checkpointer = Checkpointer(database, bool(kwargs.get("uri")), write_lock)
    engine.dialect.loaded_dbapi.checkpointer = checkpointer
    return checkpointer


def _reader_of(engine: AsyncEngine, url: str) -> AsyncEngine:
    """SQLite: the engine of the readers' pool (`Database.read`, `Database.reading`), whose statements the listeners
    of `engine` are told of too (the query-budget tests, bench/calls.py --statements), as of `engine`'s own."""
    reader = _sqlite_engine(url)
    told = engine.sync_engine.dispatch

    @event.listens_for(reader.sync_engine, "before_cursor_execute")
    def _tell(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if told.before_cursor_execute:
            told.before_cursor_execute(conn, cursor, statement, parameters, context, executemany)

    return reader


async def _begin_postgres(engine: AsyncEngine) -> AsyncConnection:
    """A connection of the pool with its transaction begun: what `engine.begin()` gives, in one pass through
    SQLAlchemy's greenlet, not two (connect, then begin: every request's transaction and every linker pass). As with
    SQLAlchemy, nothing is sent yet: the driver sends BEGIN with the first statement (exchange.store.direct)."""
    return await _connect(engine, True)


async def _end_sqlite(conn: AsyncConnection, commit: bool) -> None:
    """COMMIT (or ROLLBACK: on the loop, exchange.store.sqlite_driver), SQLAlchemy's end of the transaction and the
    pool's check-in, in one pass through its greenlet, not two (`engine.begin()`'s exit: commit, then close)."""
    await greenlet_spawn(_close, conn.sync_connection, commit)


async def _end_postgres(conn: AsyncConnection, commit: bool) -> None:
    """Commit (or roll back) and give the connection back to the pool: the COMMIT on the driver
    (`direct.commit`, its error as SQLAlchemy's), then SQLAlchemy's end of the transaction (its events; nothing left to
    send) and the pool's check-in in one pass through its greenlet, not two."""
    committed = False
    try:
        if commit:
            await direct.commit(conn)
            committed = True
    finally:  # (a COMMIT that failed: SQLAlchemy rolls back, which a lost connection allows)
        await greenlet_spawn(_close, conn.sync_connection, committed)


async def _connect(engine: AsyncEngine, begin: bool, **options: object) -> AsyncConnection:
    """A connection of the pool with `options` set (and its transaction begun), in one pass through SQLAlchemy's
    greenlet, not two or three (connect, execution_options, begin); `_close` ends it in one more."""
    def connect() -> Connection:
        sync = engine.sync_engine.connect()
        try:
            if options:
                sync.execution_options(**options)
            if begin:
                sync.begin()
        except BaseException:
            sync.close()
            raise
        return sync

    return AsyncConnection(engine, await greenlet_spawn(connect))


def _close(sync: Connection, commit: bool) -> None:
    try:
        transaction = sync.get_transaction()
        if transaction is not None and transaction.is_active:
            transaction.commit() if commit else transaction.rollback()
    finally:
        sync.close()


class _Held:
    """SQLite (a database file): connections of one pool that the Database keeps checked out between its uses of
    them, the one given back last taken first (its page cache is the freshest). A use takes one and gives it back on
    the loop, and its transaction begins and ends there (`transaction`, `end`): no checkout and check-in of
    SQLAlchemy's pool (its events, the reset's ROLLBACK, the `Connection` and its proxy built anew), no pass through
    its greenlet, and no task of its own for the check-in, whose connection stayed out meanwhile, so the pool often
    had none left and opened one (a thread, a file, the schema read, seven PRAGMAs) only to close it at check-in.
    As many as the pool allows: a use that finds none idle and the pool's limit held waits for one given back (the
    pool's own queue would wait for a check-in that never comes)."""

    def __init__(self, engine: AsyncEngine, timeout: float = 30.0, **options: object) -> None:
        self.engine = engine
        self.timeout = timeout  # seconds a use waits for a connection (the pool's timeout), then PoolTimeout
        self.options = options
        self.idle: list[AsyncConnection] = []
        pool = engine.sync_engine.pool
        self.limit = pool.size() + max(getattr(pool, "_max_overflow", 0), 0)  # (QueuePool's size and overflow)
        self.out = 0  # connections checked out of the pool for this, idle or in use
        self._waiting: collections.deque[asyncio.Future] = collections.deque()
        self._base: Mapping | None = None  # the execution options a connection is taken with

    async def take(self) -> AsyncConnection:
        while True:
            while self.idle:
                conn = self.idle.pop()
                if _reusable(conn.sync_connection):
                    return conn
                await self.discard(conn)
            if self.out < self.limit:
                break
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await asyncio.wait_for(waiter, self.timeout)
            except asyncio.TimeoutError:
                raise PoolTimeout(f"no connection came free within {self.timeout:g} s") from None
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # (given a turn it will not take: the next waiter's)
                raise
        self.out += 1
        try:
            conn = await _connect(self.engine, False, **self.options)
        except BaseException:
            self.out -= 1
            self._wake()
            raise
        if self._base is None:
            self._base = conn.sync_connection._execution_options  # noqa: SLF001
        return conn

    async def give_back(self, conn: AsyncConnection) -> None:
        """`conn` with no transaction left (else it goes back to the pool, whose check-in rolls it back), and the
        execution options a use set on it (the linker's and the group commit's marks) taken off again, as a
        connection of the pool would have them."""
        sync = conn.sync_connection
        if _reusable(sync) and not sync.in_transaction() and self._restore(sync):
            self.idle.append(conn)
            self._wake()
        else:
            await self.discard(conn)

    @asynccontextmanager
    async def transaction(self, operation: str) -> AsyncIterator[AsyncConnection]:
        """A held connection in a transaction begun with `operation` (BEGIN or BEGIN IMMEDIATE) on the loop,
        SQLAlchemy's begin told without a pass through its greenlet (a BEGIN IMMEDIATE that must wait for another
        process's lock goes through it: the "begin" listener waits on the thread); committed when the block ends,
        rolled back if it raises (`end`)."""
        conn = await self.take()
        try:
            sync = conn.sync_connection
            if sqlite_driver.begin_ahead(sync.connection.dbapi_connection, operation):
                sync.begin()  # (SQLAlchemy's bookkeeping and listeners: nothing of it waits)
            else:
                await greenlet_spawn(sync.begin)
        except BaseException:
            await self.discard(conn)
            raise
        try:
            yield conn
        except BaseException:
            await self.end(conn, commit=False)
            raise
        await self.end(conn, commit=True)

    async def end(self, conn: AsyncConnection, commit: bool) -> None:
        """COMMIT (or ROLLBACK) of `conn`'s transaction, if it has one, and give it back: on the loop when the
        transaction runs there (nothing to wait for, so nothing a cancellation could cut short), else through
        SQLAlchemy's greenlet in a task of its own, and the connection goes back to the pool. A failed COMMIT
        raises (the connection goes back to the pool, whose check-in rolls it back)."""
        sync = conn.sync_connection
        transaction = sync.get_transaction()
        if transaction is not None and transaction.is_active:
            if not _reusable(sync) or not sqlite_driver.ends_on_loop(sync.connection.dbapi_connection):
                try:
                    await asyncio.shield(greenlet_spawn(_close, sync, commit))
                finally:
                    self._gone()
                return
            try:
                transaction.commit() if commit else transaction.rollback()
            except BaseException:
                await self.discard(conn)
                raise
        await self.give_back(conn)

    def _gone(self) -> None:
        self.out -= 1
        self._wake()

    async def discard(self, conn: AsyncConnection) -> None:
        """`conn` back to the pool (whose check-in rolls back what it began)."""
        try:
            await _discard(conn)
        finally:
            self._gone()

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _restore(self, sync: Connection) -> bool:
        options, base = sync._execution_options, self._base  # noqa: SLF001
        if options is base or base is None:
            return True
        if options.get("isolation_level") != base.get("isolation_level"):  # (that changed the driver's connection)
            return False
        sync._execution_options = base  # noqa: SLF001 - (options of SQLAlchemy's own: no event, nothing sent)
        return True

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            await self.discard(conn)


def _reusable(sync: Connection) -> bool:
    return not (sync.closed or sync.invalidated)


async def _discard(conn: AsyncConnection) -> None:
    """Back to the pool (a transaction left is rolled back), in a task of its own if this one is cancelled."""
    await asyncio.shield(greenlet_spawn(_close, conn.sync_connection, False))


class BegunTransaction:
    """A request's transaction begun before its unit of work (PostgreSQL): the bearer check's statement runs in it
    and the unit then continues it, so a request is one transaction. Whoever finishes it first commits or rolls
    back; a request that never opens a unit has it rolled back when the response is done."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._taken = False
        self._done = False

    @classmethod
    async def begin(cls, engine: AsyncEngine) -> "BegunTransaction":
        return cls(await _begin_postgres(engine))

    def take(self) -> bool:
        """True once: for the first unit of the request, which then owns the transaction."""
        if self._taken or self._done:
            return False
        self._taken = True
        return True

    async def finish(self, commit: bool) -> None:
        if self._done:
            return
        self._done = True
        await _end_postgres(self.conn, commit)


# PostgreSQL refusing a new connection: at max_connections, or starting up or shutting down
_REFUSALS = (TooManyConnectionsError, CannotConnectNowError)


def unavailable(error: BaseException) -> bool:
    """The database could not be had: no connection of the pool came free in time (`Settings.database_pool_timeout`),
    or a new one was refused (the server down, or at its connection limit). Nothing was begun, so nothing changed:
    the HTTP edge answers 503 with Retry-After (`exchange.edge`)."""
    if isinstance(error, (PoolTimeout, ConnectionRefusedError)):  # (asyncpg's connect raises the OSError itself)
        return True
    return isinstance(error, DBAPIError) and isinstance(getattr(error.orig, "__cause__", None), _REFUSALS)


class Database:
    """Owns the engine; hands out one connection per unit of work, inside one transaction."""

    def __init__(self, url: str, pool_size: int = 20, pool_timeout: float = 30.0):
        self.url = url
        self.pool_timeout = pool_timeout
        self.dialect = make_url(url).get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        if self.is_sqlite:
            _folder_exists(make_url(url))
            self.engine = _sqlite_engine(url)
            self._write_lock: asyncio.Lock | None = asyncio.Lock()
            self._checkpointer = _checkpointer(self.engine, self._write_lock)
            self._one_connection = _url_in_memory(make_url(url))
            # the readers' pool (CACHE_KIB says why); in memory, the one connection there is
            self._reader = self.engine if self._one_connection else _reader_of(self.engine, url)
            # connections held between uses (`_Held`); in memory, the pool's one connection as before
            self._writers = None if self._one_connection else _Held(self.engine, pool_timeout)
            self._readers = None if self._one_connection else _Held(self._reader, pool_timeout, **{_READ_ONLY: True})
        else:
            # No pre-ping: on asyncpg it is three round trips (BEGIN, a ping, ROLLBACK) on every checkout, i.e. on
            # every request. A connection the server dropped fails the statement that uses it; SQLAlchemy then
            # discards every connection of the pool made before that moment, so only requests in flight at a
            # database restart fail (500, nothing changed) and the next ones connect afresh.
            # JIT off: the exchange's statements are short, but PostgreSQL estimates some of them (the partner's
            # audit search with its visibility subplans) above jit_above_cost on a large store and compiled them
            # on every request: 5.6 s of a request at 1,000,000 referrals whose statements touch 151 buffers.
            # Every connection opened is kept (no overflow): the pool used to keep half its limit and close the
            # rest when returned, so a process with more requests in flight than that opened and closed a
            # connection for nearly each of them (bench/load.py --workers 1, 32 clients: 754 sessions a run,
            # PostgreSQL 9.2 ms of CPU a lifecycle).
            self.engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, hide_parameters=True,
                                              pool_timeout=pool_timeout,
                                              connect_args={"server_settings": {"jit": "off"}})
            self._write_lock = None
            self._checkpointer = None
            self._one_connection = False
            self._reader = self.engine
            self._writers = self._readers = None

    @asynccontextmanager
    async def transaction(self, begun: BegunTransaction | None = None) -> AsyncIterator[AsyncConnection]:
        """One database transaction: committed when the block ends, rolled back if it raises. `begun`: the request's
        transaction begun already, continued here if no unit took it yet."""
        if begun is not None and begun.take():
            try:
                yield begun.conn
            except BaseException:
                await begun.finish(commit=False)
                raise
            await begun.finish(commit=True)
            return
        if self._writers is not None:  # (SQLite, a file: a held connection, BEGIN IMMEDIATE and COMMIT on the loop)
            async with self._writing(), self._writers.transaction(sqlite_driver.BEGIN_WRITE) as conn:
                yield conn
            await asyncio.sleep(0)  # (nothing above waited: a loop of writes lets the loop, a checkpoint, run between)
            return
        if self.is_sqlite:  # (connect and BEGIN IMMEDIATE in one pass, COMMIT and check-in in one: not four)
            async with self._writing():
                conn = await _connect(self.engine, True)
                try:
                    yield conn
                except BaseException:
                    await asyncio.shield(_end_sqlite(conn, commit=False))
                    raise
                await asyncio.shield(_end_sqlite(conn, commit=True))
            return
        conn = await _begin_postgres(self.engine)
        try:
            yield conn
        except BaseException:
            await asyncio.shield(_end_postgres(conn, commit=False))  # (as engine.begin(): the pool gets it back)
            raise
        await asyncio.shield(_end_postgres(conn, commit=True))

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        """SQLite: this process's write lock, waited for at most the pool's timeout, as a connection is (then
        PoolTimeout: the edge answers 503); taken at once, without a timer, when no write holds it."""
        lock = self._write_lock
        if lock.locked():
            try:
                async with asyncio.timeout(self.pool_timeout):
                    await lock.acquire()
            except TimeoutError:
                raise PoolTimeout(f"the write lock did not come free within {self.pool_timeout:g} s") from None
        else:
            await lock.acquire()
        try:
            yield
        finally:
            lock.release()

    @asynccontextmanager
    async def reading(self, begun: BegunTransaction | None = None) -> AsyncIterator[AsyncConnection]:
        """A transaction that only reads (a unit that changes nothing: its records go in a group commit,
        `exchange.audit.group_commit`). PostgreSQL: as `transaction` (the request's, `begun`, when no unit took it);
        writing nothing, its COMMIT waits for no WAL flush. SQLite: a deferred BEGIN, not queued with the writers (in
        WAL mode one snapshot that waits for no writer and holds none up); in memory (one shared connection) the
        writers' queue, as `transaction`."""
        if self._readers is None:
            async with self.transaction(begun) as conn:
                yield conn
            return
        async with self._readers.transaction(sqlite_driver.BEGIN_READ) as conn:  # (held, BEGIN and COMMIT on the loop)
            yield conn

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """A write of one statement that is its own transaction (atomic, committed when it returns). PostgreSQL: no
        BEGIN and COMMIT round trips around it (autocommit; its commit waits for the WAL flush as any). SQLite: one
        write transaction, as `transaction`, whatever it runs."""
        if self.is_sqlite:
            async with self.transaction() as conn:
                yield conn
            return
        # (begun as SQLAlchemy sees it, so the driver's statement needs no pass of its own for that: nothing is sent)
        conn = await _connect(self.engine, True, isolation_level="AUTOCOMMIT")
        try:
            yield conn
        finally:
            await asyncio.shield(greenlet_spawn(_close, conn.sync_connection, False))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one statement that only reads (the bearer check's token state), not queued with the
        writers, and no transaction begun for it (no BEGIN/COMMIT round trips): the statement is its own snapshot.
        On SQLite exchange.store.direct runs it so, on the loop (in WAL mode a reader waits for nobody), on the
        readers' pool (the writers' connection keeps its page cache: CACHE_KIB); a statement
        through SQLAlchemy gets a deferred transaction of its own (rolled back at the end: it wrote nothing)."""
        if self._readers is not None:  # (a held connection; what a statement through SQLAlchemy began, rolled back)
            held = self._readers
            conn = await held.take()
            try:
                yield conn
            finally:
                await held.end(conn, commit=False)
            return
        conn = await _connect(self._reader, False, **({_READ_ONLY: True} if self.is_sqlite else
                                                     {"isolation_level": "AUTOCOMMIT"}))
        try:  # (connect and its options in one pass, the check-in in one: not three, the last in a task of its own)
            yield conn
        finally:
            await asyncio.shield(greenlet_spawn(conn.sync_connection.close))

    async def dispose(self) -> None:
        for held in (self._writers, self._readers):
            if held is not None:
                await held.close()
        if self._checkpointer is not None:  # (its last WAL checkpoint before the connections close)
            await self._checkpointer.close()
        if self._reader is not self.engine:
            await self._reader.dispose()
        await self.engine.dispose()
