"""Statements compiled once and run on the driver: the few statements every request issues, without SQLAlchemy's
per-statement work.

SQLAlchemy spends about 100 µs of CPU and 170 Python calls on each statement it executes (cache key, execution
context, result metadata, the driver's adapter, a greenlet switch each way); the driver alone a fraction of that.
A `Statement` wraps a Core statement, compiled once per dialect (its parameters in the order its bind parameters
appear, with the values the statement itself carries), and runs it under the caller's `AsyncConnection`, in its
transaction (begun here, as SQLAlchemy would at the first statement, if it is not yet):
- on PostgreSQL on the asyncpg connection (`$n` parameters); rows come back as asyncpg makes them, so only
  statements whose columns need no conversion (text, numbers, booleans, naive timestamps) belong here;
- on SQLite on the sqlite3 connection, when its transaction runs on the event loop (exchange.store.sqlite_driver:
  every transaction the exchange begins), or, on a connection of `Database.read`, in none (the statement is its own
  snapshot); rows come back as mappings of the statement's column names, with the
  conversions SQLAlchemy's result would apply (SQLite keeps timestamps as text and booleans as integers). Anything
  else (a connection without such a transaction) runs through SQLAlchemy as before.
Parameters get the conversions SQLAlchemy would apply to them; no statement with expanding (IN) parameters.

Nothing is hidden: listeners of the engine's `before_cursor_execute` event (the query-budget tests count
statements there) are told of every statement run here. A driver error becomes the DB-API error SQLAlchemy would
have raised, and the pool throws away a connection that was lost.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement

from exchange.store import sqlite_driver


class Statement:
    """One Core statement (`params` names its bind parameters; an INSERT's `columns`, the columns it sets)."""

    def __init__(self, statement: ClauseElement, columns: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.columns = list(columns) if columns is not None else None
        self._compiled: dict[str, tuple] = {}  # by dialect name: (SQL, parameter names, defaults, conversions, columns)

    def _compile(self, dialect) -> tuple:  # noqa: ANN001
        done = self._compiled.get(dialect.name)
        if done is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.columns)
            if any(bind.expanding for bind in compiled.binds.values()):
                raise TypeError("expanding (IN) parameters are rendered per call: not for a compiled statement")
            names = tuple(compiled.positiontup or ())
            defaults = {name: bind.effective_value for name, bind in compiled.binds.items()
                        if not bind.required and bind.callable is None}
            processors = compiled._bind_processors  # noqa: SLF001 - the conversions SQLAlchemy applies to values
            columns = tuple((c.keyname, c.type._cached_result_processor(dialect, None))  # noqa: SLF001 - (and rows)
                            for c in compiled._result_columns)  # noqa: SLF001
            done = self._compiled[dialect.name] = (
                compiled.string, names, defaults,
                tuple((i, _faster(compiled.binds[n].type, dialect, processors[n]))
                      for i, n in enumerate(names) if n in processors),
                tuple(key for key, _ in columns), tuple(process for _, process in columns))
        return done

    def _args(self, dialect, params: Mapping[str, Any]) -> tuple[str, list]:  # noqa: ANN001
        compiled = self._compile(dialect)
        return compiled[0], _values(compiled, params)

    def _rows(self, dialect, rows: list) -> list[dict]:  # noqa: ANN001
        """SQLite's rows as mappings, each value converted as SQLAlchemy's result would."""
        _, _, _, _, keys, processors = self._compile(dialect)
        if not any(processors):
            return [dict(zip(keys, row)) for row in rows]
        return [dict(zip(keys, [v if process is None else process(v) for process, v in zip(processors, row)]))
                for row in rows]


def _values(compiled: tuple, params: Mapping[str, Any]) -> list:
    """A statement's parameters in order (`compiled`: `Statement._compile`'s), each converted as SQLAlchemy would."""
    _, names, defaults, processors, _, _ = compiled
    values = [params[n] if n in params else defaults[n] for n in names]
    for i, process in processors:
        values[i] = process(values[i])
    return values


def _faster(type_, dialect, process):  # noqa: ANN001, ANN202
    """SQLAlchemy's conversion of a parameter, or the same conversion done faster: SQLite's DATETIME in its default
    storage format ("2026-12-03 09:15:02.000123", always with the microseconds) is what `isoformat(" ",
    "microseconds")` writes of a naive datetime, in one C call instead of a format of seven fields (a lifecycle
    converts about 190: every row's last_updated, the index rows' dates, the audit records' times)."""
    from sqlalchemy.dialects.sqlite import DATETIME

    impl = type_.dialect_impl(dialect)
    if dialect.name != "sqlite" or type(impl) is not DATETIME or \
            impl._storage_format != _SQLITE_DATETIME:  # noqa: SLF001
        return process

    def datetime_text(value):  # noqa: ANN001, ANN202
        if value is None:  # (most index rows have no dates)
            return None
        if type(value) is datetime and value.tzinfo is None:
            return value.isoformat(" ", "microseconds")
        return process(value)  # (dates, aware or other datetimes: as SQLAlchemy does)

    return datetime_text


_SQLITE_DATETIME = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"


async def _driver(conn: AsyncConnection):  # noqa: ANN202
    """The asyncpg connection under `conn` and SQLAlchemy's adapter of it, in `conn`'s transaction."""
    sync = conn.sync_connection
    if not sync.in_transaction():  # (SQLAlchemy begins one at a connection's first statement: so do we)
        await conn.begin()
    if sync.closed or sync.invalidated:  # (SQLAlchemy reconnects, or says why not)
        adapted = (await conn.get_raw_connection()).dbapi_connection
    else:  # the connection it holds checked out: no round trip through a greenlet to ask for it
        adapted = sync.connection.dbapi_connection
    if adapted._transaction is None:  # noqa: SLF001 - its adapter sends BEGIN at the first statement: now
        async with adapted._execute_mutex:  # noqa: SLF001
            if adapted._transaction is None:  # noqa: SLF001  (autocommit: it begins nothing)
                try:  # (a BEGIN on a connection the server ended: invalidated as a failed statement's is, `_raise`;
                    # left as it was, it went back to the pool and failed the next request too)
                    await adapted._start_transaction()  # noqa: SLF001
                except Exception as exc:  # noqa: BLE001
                    _raise(conn, adapted, exc, "BEGIN")
    return adapted


async def _run(conn: AsyncConnection, sql: str, args: list, method: str, many: bool = False):  # noqa: ANN202
    sync = conn.sync_connection
    dispatch = sync.dispatch.before_cursor_execute
    if dispatch:  # (listeners, such as the query-budget tests, see the statement)
        dispatch(sync, None, sql, args, None, many)
    adapted = await _driver(conn)
    try:
        return await getattr(adapted._connection, method)(sql, *args)  # noqa: SLF001
    except Exception as exc:  # noqa: BLE001
        _raise(conn, adapted, exc, sql)


async def _sqlite(conn: AsyncConnection, statement: Statement, args: Any, many: bool = False):  # noqa: ANN202
    """On SQLite, the statement on the sqlite3 connection under `conn` (`args`: a mapping of parameters, or a list
    of them when `many`): (rowcount, rows as sqlite3 gives them); None when that connection's transaction does not
    run on the loop (then SQLAlchemy runs it)."""
    sync = conn.sync_connection
    reading = sync.get_execution_options().get(sqlite_driver.READ_ONLY, False)  # (Database.read: no transaction)
    if not reading and not sync.in_transaction():  # (SQLAlchemy begins one at the first statement: so do we)
        await conn.begin()
    if sync.closed or sync.invalidated:
        return None
    adapted = sync.connection.dbapi_connection
    if not sqlite_driver.on_loop(adapted, reading):
        return None
    compiled = statement._compile(sync.dialect)
    sql = compiled[0]
    values = [_values(compiled, r) for r in args] if many else _values(compiled, args)
    dispatch = sync.dispatch.before_cursor_execute
    if dispatch:  # (listeners, such as the query-budget tests, see the statement)
        dispatch(sync, None, sql, values, None, many)
    try:
        return sqlite_driver.run_on_loop(adapted, sql, values, many)
    except Exception as exc:  # noqa: BLE001
        _raise(conn, adapted, exc, sql)


def _postgres(conn: AsyncConnection):  # noqa: ANN202
    """The dialect when it is PostgreSQL's, else None."""
    dialect = conn.sync_connection.dialect
    return dialect if dialect.name == "postgresql" else None


async def fetchrow(conn: AsyncConnection, statement: Statement, params: Mapping[str, Any]):  # noqa: ANN201
    """The first row (by column name: `row["name"]`), or None."""
    dialect = _postgres(conn)
    if dialect is not None:
        return await _run(conn, *statement._args(dialect, params), "fetchrow")
    done = await _sqlite(conn, statement, params)
    if done is None:
        return (await conn.execute(statement.statement, dict(params))).mappings().first()
    rows = done[1]
    return statement._rows(conn.sync_connection.dialect, rows[:1])[0] if rows else None


async def fetch(conn: AsyncConnection, statement: Statement, params: Mapping[str, Any]) -> list:
    """Every row (by column name)."""
    dialect = _postgres(conn)
    if dialect is not None:
        return await _run(conn, *statement._args(dialect, params), "fetch")
    done = await _sqlite(conn, statement, params)
    if done is None:
        return list((await conn.execute(statement.statement, dict(params))).mappings().all())
    return statement._rows(conn.sync_connection.dialect, done[1])


async def execute(conn: AsyncConnection, statement: Statement, params: Mapping[str, Any]) -> int:
    """The rows the statement changed (as `rowcount` says)."""
    dialect = _postgres(conn)
    if dialect is not None:
        status = await _run(conn, *statement._args(dialect, params), "execute")  # e.g. "UPDATE 1", "INSERT 0 1"
        count = status.rpartition(" ")[2] if status else ""
        return int(count) if count.isdigit() else -1
    done = await _sqlite(conn, statement, params)
    if done is None:
        return (await conn.execute(statement.statement, dict(params))).rowcount
    return done[0]


async def executemany(conn: AsyncConnection, statement: Statement, rows: Sequence[Mapping[str, Any]]) -> None:
    """The statement once per row, in one round trip (asyncpg's pipelined executemany; sqlite3's executemany)."""
    if not rows:
        return
    dialect = _postgres(conn)
    if dialect is not None:
        compiled = statement._compile(dialect)
        await _run(conn, compiled[0], [[_values(compiled, r) for r in rows]], "executemany", many=True)
        return
    if await _sqlite(conn, statement, rows, many=True) is None:
        await conn.execute(statement.statement, [dict(r) for r in rows])


async def commit(conn: AsyncConnection) -> None:
    """PostgreSQL: the COMMIT of `conn`'s transaction on the driver, as SQLAlchemy's adapter would send it (its
    adapter then has nothing left to commit: SQLAlchemy's own commit afterwards only ends its bookkeeping and
    sends nothing). A connection SQLAlchemy no longer holds, or one that began nothing, is left to SQLAlchemy."""
    sync = conn.sync_connection
    if sync.closed or sync.invalidated:
        return
    adapted = sync.connection.dbapi_connection
    transaction = adapted._transaction  # noqa: SLF001
    if transaction is None:
        return
    try:
        await adapted._call_and_discard(transaction.commit)  # noqa: SLF001 - (the adapter's own way)
    except Exception as exc:  # noqa: BLE001
        _raise(conn, adapted, exc, "COMMIT")


def is_postgres(conn: AsyncConnection) -> bool:
    return _postgres(conn) is not None


async def execute_sql(conn: AsyncConnection, sql: str, args: Sequence[Any]) -> None:
    """PostgreSQL only: `sql` as written (asyncpg's `$n` parameters), `args` as asyncpg takes them."""
    await _run(conn, sql, list(args), "execute")


async def fetch_sql(conn: AsyncConnection, sql: str, args: Sequence[Any]) -> list:
    """PostgreSQL only: `execute_sql`, and the statement's rows (asyncpg's records)."""
    return await _run(conn, sql, list(args), "fetch")


def _raise(conn: AsyncConnection, adapted, exc: Exception, sql: str) -> None:  # noqa: ANN001
    """As SQLAlchemy would: the driver's error as its DB-API error, and a lost connection invalidated."""
    try:
        adapted._handle_exception(exc)  # noqa: SLF001 - raises the DB-API error
    except Exception as dbapi_error:  # noqa: BLE001
        disconnect = conn.dialect.is_disconnect(dbapi_error, adapted, None)
        if disconnect:  # the pool's connections made before now go too, as SQLAlchemy does on a disconnect
            sync = conn.sync_connection
            if not sync.invalidated:
                conn.sync_engine.pool._invalidate(sync.connection, dbapi_error)  # noqa: SLF001
                sync.invalidate(dbapi_error)
        raise DBAPIError.instance(sql, None, dbapi_error, conn.dialect.loaded_dbapi.Error,
                                  hide_parameters=True, dialect=conn.dialect,
                                  connection_invalidated=disconnect) from exc
