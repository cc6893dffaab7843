"""The store's writes: new versions with their `meta`, the search-index, party and recorder rows of the current
version, and the rows a unit of work defers until it flushes them together.

`exchange.fhir.indexing` derives a resource's search values from the FHIR definitions; the store owns writing them:
a version's index rows replace the last version's in the same unit, so the index always describes the current
version."""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Iterable

import orjson
from sqlalchemy import Table, and_, bindparam, delete, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.store import clock, direct
from exchange.store.clock import to_db
from exchange.store.meta import tombstone, with_meta
from exchange.store.tables import (condition_lock, resource, resource_party, resource_recorder, resource_version,
                                   search_index)
from exchange.store.values import IndexRow, StoredResource, Superseded


# The writes, built once (a statement built per call costs its cache key and coercions on every request), compiled
# once and run on the driver (exchange.store.direct: every write issues them).
_VERSION_COLUMNS = ("resource_type", "id", "version_id", "last_updated", "deleted", "content")
_INSERT_RESOURCE = direct.Statement(insert(resource).inline(), _VERSION_COLUMNS)
_INSERT_VERSION = direct.Statement(insert(resource_version).inline(), (*_VERSION_COLUMNS, "method"))
_INSERT_INDEX = direct.Statement(insert(search_index).inline(), ("resource_type", "resource_id", "param", "system",
                                                                 "value", "text", "date_start", "date_end",
                                                                 "last_updated"))
_INSERT_PARTY = direct.Statement(insert(resource_party).inline(), ("resource_type", "resource_id", "organization_id"))
_INSERT_RECORDER = direct.Statement(insert(resource_recorder).inline(),
                                    ("resource_type", "resource_id", "organization_id"))
_MOVE_ROW = direct.Statement(
    update(resource)
    .where(resource.c.resource_type == bindparam("m_type"), resource.c.id == bindparam("m_id"),
           resource.c.version_id == bindparam("m_from"))
    .values(version_id=bindparam("m_to"), last_updated=bindparam("m_at"), deleted=bindparam("m_deleted"),
            content=bindparam("m_content")))
_UNINDEX_ONE = direct.Statement(delete(search_index).where(search_index.c.resource_type == bindparam("u_type"),
                                                           search_index.c.resource_id == bindparam("u_id")))
_PURGE_VERSION = (update(resource_version)
                  .where(resource_version.c.resource_type == bindparam("p_type"),
                         resource_version.c.id == bindparam("p_id"),
                         resource_version.c.version_id == bindparam("p_version"))
                  .values(content=bindparam("p_content")))
_UNPARTY = direct.Statement(delete(resource_party).where(resource_party.c.resource_type == bindparam("d_type"),
                                                         resource_party.c.resource_id == bindparam("d_id"),
                                                         resource_party.c.organization_id == bindparam("d_org")))
_UNINDEX_MANY = delete(search_index).where(tuple_(search_index.c.resource_type, search_index.c.resource_id)
                                           .in_(bindparam("u_keys", expanding=True)))


# A unit's deferred rows on PostgreSQL: one statement, one round trip, for every table (data-modifying CTEs, each
# row set an array a column through unnest). Every part sees the snapshot taken before the statement, so the DELETE
# removes the index rows stored before it and none of those the statement inserts. The arrays' types are the
# tables' own column types, and the parameters are numbered in the order `_write_postgres` passes them. A statement
# names only the tables that have rows (and the DELETE only when index rows are to go): one statement a shape,
# built once.
# An update's row move rides in it too (`moved`: UPDATE ... WHERE version_id = the version the unit read, as
# `_MOVE_ROW`), and every other part happens only if every row moved (`settled`): a row another transaction moved
# first moves nothing (READ COMMITTED: the UPDATE waits for that transaction's row lock and then finds the version
# changed), so nothing of the unit is written, and the statement's rows (the numbers of the moves that happened)
# tell the caller which move lost. The moves are sent in key order, so that two units lock common rows in the
# same order.
_VERSION_KEYS = ("resource_type", "id", "version_id", "last_updated", "deleted", "method", "content")
_INDEX_KEYS = ("resource_type", "resource_id", "param", "system", "value", "text", "date_start", "date_end",
               "last_updated")
_PARTY_KEYS = ("resource_type", "resource_id", "organization_id")
_MOVE_KEYS = ("m_type", "m_id", "m_from", "m_to", "m_at", "m_deleted", "m_content")
_MOVE_COLUMNS = ("resource_type", "id", "version_id", "version_id", "last_updated", "deleted", "content")
_SETTLED = "(SELECT ok FROM settled)"
_FLUSH_SQL: dict[tuple, str] = {}  # (whether rows move, index rows go, party rows go, ((table, keys), ...)) -> SQL


def _flush_postgres_sql(moves: bool, unindex: bool, unparty: bool,
                        parts: tuple[tuple[Table, tuple[str, ...], tuple | None], ...]) -> str:
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()

    def typed(table: Table, columns: Iterable[str], first: int) -> str:
        return ", ".join(f"${first + i}::{table.c[c].type.compile(dialect=dialect)}[]" for i, c in enumerate(columns))

    ctes, number, only_if = [], 1, ""
    if moves:
        ctes.append(f"moved AS (UPDATE resource AS r SET version_id = m.v_to, last_updated = m.v_at, "
                    f"deleted = m.v_deleted, content = m.v_content "
                    f"FROM unnest({typed(resource, _MOVE_COLUMNS, 1)}, $8::integer[]) "
                    f"AS m(t, i, v_from, v_to, v_at, v_deleted, v_content, n) "
                    f"WHERE r.resource_type = m.t AND r.id = m.i AND r.version_id = m.v_from RETURNING m.n)")
        ctes.append("settled AS (SELECT count(*) = cardinality($8::integer[]) AS ok FROM moved)")
        number, only_if = 9, f" WHERE {_SETTLED}"
    if unindex:
        ctes.append(f"unindexed AS (DELETE FROM search_index AS s USING unnest(${number}::varchar[], "
                    f"${number + 1}::varchar[]) AS u(t, i) WHERE s.resource_type = u.t AND s.resource_id = u.i"
                    f"{f' AND {_SETTLED}' if moves else ''})")
        number += 2
    if unparty:
        arrays = typed(resource_party, _PARTY_KEYS, number)
        ctes.append(f"unpartied AS (DELETE FROM resource_party AS p USING unnest({arrays}) AS u(t, i, o) WHERE"
                    f" p.resource_type = u.t AND p.resource_id = u.i AND p.organization_id = u.o"
                    f"{f' AND {_SETTLED}' if moves else ''})")
        number += 3
    for n, (table, keys, echo) in enumerate(parts):
        arrays = typed(table, keys, number)
        number += len(keys)
        returning = f" RETURNING {echo[1]}" if echo else ""
        ctes.append(f"{table.name}_rows{n} AS (INSERT INTO {table.name} ({', '.join(keys)}) "
                    f"SELECT * FROM unnest({arrays}){only_if}{returning})")
        if echo:  # each row's number, as the database drew it, into the echo table (`Pending.add_rows`)
            ctes.append(f"{echo[0].name}_echo{n} AS (INSERT INTO {echo[0].name} ({echo[1]}) "
                        f"SELECT {echo[1]} FROM {table.name}_rows{n})")
    return "WITH " + ", ".join(ctes) + (" SELECT n FROM moved" if moves else " SELECT 1")


def _columns(rows: list[dict], keys: tuple[str, ...]) -> list[list]:
    return [[row[k] for row in rows] for k in keys]


async def _write_postgres(conn: AsyncConnection, moves: list[tuple[dict, BaseException]],
                          unindex: list[tuple[str, str]], unparty: list[dict],
                          parts: list[tuple[Table, tuple[str, ...], list[dict]]],
                          echoes: dict[Table, tuple[Table, str]] | None = None) -> None:
    """`moves`: (`_MOVE_ROW`'s parameters, what to raise if that row moved on) of each row to move, in the unit's
    order; `unparty`: the party rows to go; `parts`: (table, keys, rows) of each table with rows to insert;
    `echoes`: by table, where its rows' numbers go too (`Pending.add_rows`). Raises the first lost move's exception
    (then nothing was written)."""
    if not (moves or unindex or unparty or parts):
        return
    echoes = echoes or {}
    shape = (bool(moves), bool(unindex), bool(unparty),
             tuple((table, keys, echoes.get(table)) for table, keys, _ in parts))
    sql = _FLUSH_SQL.get(shape)
    if sql is None:
        sql = _FLUSH_SQL[shape] = _flush_postgres_sql(*shape)
    args: list = []
    if moves:
        order = sorted(range(len(moves)), key=lambda n: (moves[n][0]["m_type"], moves[n][0]["m_id"]))
        args += [[moves[n][0][k] for n in order] for k in _MOVE_KEYS] + [order]
    if unindex:
        args += [[t for t, _ in unindex], [i for _, i in unindex]]
    if unparty:
        args += _columns(unparty, _PARTY_KEYS)
    for _, keys, rows in parts:
        args += _columns(rows, keys)
    if not moves:
        await direct.execute_sql(conn, sql, args)
        return
    moved = {row[0] for row in await direct.fetch_sql(conn, sql, args)}
    for n, (_, lost) in enumerate(moves):
        if n not in moved:
            raise lost


_INSERT_ROWS: dict[tuple[Table, tuple[str, ...]], direct.Statement] = {}  # SQLite: a table's added rows, by shape


async def _insert_rows(conn: AsyncConnection, table: Table, keys: tuple[str, ...], rows: list[dict]) -> None:
    statement = _INSERT_ROWS.get((table, keys))
    if statement is None:
        statement = _INSERT_ROWS[(table, keys)] = direct.Statement(insert(table).inline(), keys)
    await direct.executemany(conn, statement, rows)


def _dumps(body: dict) -> str:
    return orjson.dumps(body).decode()


class Pending:
    """The row moves, version, index, party and recorder rows of a unit's writes not written yet, the resources
    whose stored index rows are to go, the stored party rows to go (`Writes.remove_parties_many`), and the rows of
    other tables added to the unit's flush (`add_rows`: the hooks' audit records, alerts and outbox rows). `write`
    sends them in one statement (PostgreSQL) or one a table (SQLite), the moves first: if a row moved on meanwhile,
    nothing is written and that move's exception is raised."""

    def __init__(self) -> None:
        self.resources: list[dict] = []  # the rows of resources created since the last write
        self.fresh: dict[tuple[str, str], dict] = {}  # created since the last write: their rows (no index rows stored)
        self.moves: dict[tuple[str, str], tuple[dict, BaseException]] = {}  # stored rows to move: (`_MOVE_ROW`'s
        # parameters, what to raise if the row is no longer at the version the unit read), in the unit's order
        self.versions: list[dict] = []  # version rows
        self.index: dict[tuple[str, str], list[dict]] = {}  # index rows, by resource
        self.unindex: dict[tuple[str, str], None] = {}  # resources whose stored index rows are to go (in order)
        self.parties: dict[tuple[str, str], set[str]] = {}  # party rows, by resource
        self.unparties: dict[tuple[str, str], set[str]] = {}  # stored party rows to go, by resource
        self.recorders: list[dict] = []  # recorder rows
        self.added: dict[Table, tuple[tuple[str, ...], list[dict]]] = {}  # other tables' rows: (keys, rows)
        self.echoes: dict[Table, tuple[Table, str]] = {}  # an added table -> (table, column) its numbers go into

    def __bool__(self) -> bool:
        return bool(self.resources or self.moves or self.versions or self.index or self.unindex or self.parties
                    or self.unparties or self.recorders or self.added)

    def move(self, key: tuple[str, str], expected: int, row: dict, lost: BaseException) -> None:
        """The current row of `key` becomes `row` (version_id, last_updated, deleted, content) if it is at version
        `expected`: a row created since the last write is simply written so, a row moved since then moves once
        (from the version stored); `lost` is raised here if the unit's own rows say otherwise, else by `write`
        when the stored row has moved on."""
        created = self.fresh.get(key)
        known = self.moves.get(key)
        if created is not None or known is not None:
            at = created["version_id"] if created is not None else known[0]["m_to"]
            if at != expected:
                raise lost
            if created is not None:
                created.update(row)
            else:
                known[0].update(m_to=row["version_id"], m_at=row["last_updated"], m_deleted=row["deleted"],
                                m_content=row["content"])
            return
        self.moves[key] = ({"m_type": key[0], "m_id": key[1], "m_from": expected, "m_to": row["version_id"],
                            "m_at": row["last_updated"], "m_deleted": row["deleted"], "m_content": row["content"]},
                           lost)

    def stored_parties(self, key: tuple[str, str], stored: set[str]) -> set[str]:
        """The party rows of `key` as the unit's removals leave them, given the rows `stored` now (the removals
        keep only rows there are, so that an organisation added back keeps its row instead of a second one)."""
        going = self.unparties.get(key)
        if not going:
            return stored
        going &= stored
        return stored - going

    def moved_to(self, key: tuple[str, str], stored: int | None) -> int | None:
        """The version of `key` as the unit's rows make it, given the version `stored` now."""
        known = self.moves.get(key)
        if known is not None and stored == known[0]["m_from"]:
            return known[0]["m_to"]
        created = self.fresh.get(key)
        return created["version_id"] if created is not None and stored is None else stored

    def add_rows(self, table: Table, rows: Iterable[dict], echo: tuple[Table, str] | None = None) -> None:
        """Rows of `table` to insert with the next write (in the order added; every row of a table with the same
        keys, the columns it sets). `echo` (PostgreSQL only): (another table, a column both have that the database
        numbers, e.g. by a sequence): each row's number is inserted into that table too, in the same statement (the
        audit log's queue, `exchange.audit.hook`)."""
        if echo is not None:
            self.echoes[table] = echo
        for row in rows:
            keys = tuple(row)
            known = self.added.get(table)
            if known is None:
                self.added[table] = (keys, [row])
            elif known[0] == keys:
                known[1].append(row)
            else:
                raise ValueError(f"rows added to {table.name} set different columns: {known[0]} and {keys}")

    def holds_index_of(self, resource_type: str) -> bool:
        """Whether index rows of `resource_type` are waiting (to be written or to go)."""
        return any(t == resource_type for t, _ in self.index) or any(t == resource_type for t, _ in self.unindex)

    async def write(self, conn: AsyncConnection) -> None:
        """Rows moved, stored index and party rows out, then versions, index, party and recorder rows in (on
        PostgreSQL one statement, on SQLite one a table); nothing is pending after. A move that finds its row moved
        on raises its exception (on PostgreSQL nothing of the statement is written; on SQLite nothing after the
        moves is, and the unit's transaction is rolled back with the exception)."""
        moves, unindex, resources, versions, recorders, added = (list(self.moves.values()), list(self.unindex),
                                                                 self.resources, self.versions, self.recorders,
                                                                 self.added)
        index = [row for rows in self.index.values() for row in rows]
        parties, unparty = ([{"resource_type": t, "resource_id": i, "organization_id": o}
                             for (t, i), orgs in rows.items() for o in sorted(orgs)]
                            for rows in (self.parties, self.unparties))
        self.moves, self.unindex, self.resources, self.versions, self.index, self.fresh = {}, {}, [], [], {}, {}
        self.parties, self.unparties, self.recorders, self.added = {}, {}, [], {}
        echoes, self.echoes = self.echoes, {}
        if direct.is_postgres(conn):
            parts = [(table, keys, rows) for table, keys, rows in (
                (resource, _VERSION_COLUMNS, resources), (resource_version, _VERSION_KEYS, versions), (search_index, _INDEX_KEYS, index),
                (resource_party, _PARTY_KEYS, parties), (resource_recorder, _PARTY_KEYS, recorders)) if rows]
            await _write_postgres(conn, moves, unindex, unparty,
                                  parts + [(t, keys, rows) for t, (keys, rows) in added.items()], echoes)
            return
        if echoes:
            raise ValueError("echoed rows are PostgreSQL's (SQLite: a trigger does it)")
        for values, lost in moves:
            if await direct.execute(conn, _MOVE_ROW, values) != 1:
                raise lost
        if len(unindex) == 1:
            await direct.execute(conn, _UNINDEX_ONE, {"u_type": unindex[0][0], "u_id": unindex[0][1]})
        elif unindex:
            await conn.execute(_UNINDEX_MANY, {"u_keys": unindex})
        await direct.executemany(conn, _UNPARTY, [{"d_type": r["resource_type"], "d_id": r["resource_id"],
                                                   "d_org": r["organization_id"]} for r in unparty])
        await direct.executemany(conn, _INSERT_RESOURCE, resources)
        await direct.executemany(conn, _INSERT_VERSION, versions)
        await direct.executemany(conn, _INSERT_INDEX, index)
        await direct.executemany(conn, _INSERT_PARTY, parties)
        await direct.executemany(conn, _INSERT_RECORDER, recorders)
        for table, (keys, rows) in added.items():
            await _insert_rows(conn, table, keys, rows)


class UnitMemory:
    """The state both halves of a unit's repository share (`Repository.__init__` sets it): its connection, the rows
    it deferred, and what it remembers of current versions, party sets, reference lookups and recorders."""

    conn: AsyncConnection
    _pending: Pending
    _current: dict[tuple[str, str], StoredResource | None]
    _parties: dict[tuple[str, str], set[str]]
    _referring: dict[tuple[str, str, str, str], set[str]]
    _recorders: dict[tuple[str, str], str | None]
    _minted: set[tuple[str, str]]
    _indexed: dict[tuple[str, str], list[dict]]


class Writes(UnitMemory):
    """The write half of `exchange.store.repository.Repository` (the state both halves share: `UnitMemory`); a write
    keeps the unit's memory of the reads (`Reads._remember`, `Reads.parties`) in step."""

    deferred: bool

    def new_id(self, resource_type: str) -> str:
        """A new resource's id, drawn at random here, so this unit knows no row stored before it can name the
        resource (`Reads.referring_ids` answers who refers to it from the unit's own index rows)."""
        resource_id = str(uuid.uuid4())
        self._minted.add((resource_type, resource_id))
        return resource_id

    async def flush(self) -> None:
        """Write the deferred rows: stored index rows out, then versions, index, party and recorder rows in."""
        await self._pending.write(self.conn)

    async def add_rows(self, table: Table, rows: Iterable[dict], echo: tuple[Table, str] | None = None) -> None:
        """Rows of another table to insert in the unit's transaction, with its deferred rows when it flushes them
        (at once without `deferred`); `echo` as `Pending.add_rows`. The store does not look at them: the tables are
        their owners' (the audit log's records, the inbox's alerts, the outbox's rows)."""
        if self.deferred:
            self._pending.add_rows(table, rows, echo)
            return
        pending = Pending()
        pending.add_rows(table, rows, echo)
        await pending.write(self.conn)

    async def _flushed(self, index_of: str | None = None) -> None:
        """Flush before a read of the deferred tables; `index_of`: the read is of that type's index rows alone, so
        it waits only for rows of that type (a Bundle's Patient and Consent need not be written for its
        ServiceRequest's rules to look up other requests)."""
        if index_of is not None:
            if self._pending.holds_index_of(index_of):
                await self.flush()
        elif self._pending:
            await self.flush()

    async def create(self, resource_type: str, resource_id: str, body: dict, index_rows: Iterable[IndexRow],
                     parties: Iterable[str] = (), now: datetime | None = None) -> StoredResource:
        now = now or clock.utcnow()
        stored_body = with_meta(body, resource_id, 1, now)
        content = orjson.dumps(stored_body).decode()
        values = dict(resource_type=resource_type, id=resource_id, version_id=1, last_updated=to_db(now),
                      deleted=False, content=content)
        if self.deferred:  # (a duplicate id fails the flush, and the unit with it)
            self._pending.resources.append(values)
            self._pending.fresh[(resource_type, resource_id)] = values  # (a later update in the unit amends it)
        else:
            await direct.execute(self.conn, _INSERT_RESOURCE, values)
        await self._keep_version(dict(values, method="POST"))
        await self._write_index(resource_type, resource_id, index_rows, now)
        self._parties[(resource_type, resource_id)] = set()  # a new resource has no party rows yet
        await self.add_parties(resource_type, resource_id, parties)
        return self._remember(StoredResource(resource_type, resource_id, 1, now, False, content, stored_body))

    async def update(self, current: StoredResource, body: dict, index_rows: Iterable[IndexRow],
                     parties: Iterable[str] | None = None, now: datetime | None = None, method: str = "PUT",
                     lost: BaseException | None = None) -> StoredResource:
        """Write a new version on top of `current`. If someone else wrote a version first (a lost race), `lost`
        (default `Superseded`) is raised: at once, or, in a deferred unit, by the flush that writes the move
        (`_write_version`)."""
        now = clock.after(current.last_updated, now or clock.utcnow())
        version_id = current.version_id + 1
        stored_body = with_meta(body, current.id, version_id, now)
        content = orjson.dumps(stored_body).decode()
        await self._write_version(current, version_id, now, content, False, method, lost)
        await self._delete_index(current.resource_type, current.id)
        await self._write_index(current.resource_type, current.id, index_rows, now)
        if parties is not None:
            await self.add_parties(current.resource_type, current.id, parties)
        return self._remember(StoredResource(current.resource_type, current.id, version_id, now, False, content,
                                             stored_body))

    async def delete(self, current: StoredResource, now: datetime | None = None, lost: BaseException | None = None
                     ) -> StoredResource:
        """A tombstone on top of `current`; a lost race raises `lost`, as `update`."""
        now = clock.after(current.last_updated, now or clock.utcnow())
        version_id = current.version_id + 1
        tomb = tombstone(current.resource_type, current.id, version_id, now)
        content = orjson.dumps(tomb).decode()
        await self._write_version(current, version_id, now, content, True, "DELETE", lost)
        await self._delete_index(current.resource_type, current.id)
        return self._remember(StoredResource(current.resource_type, current.id, version_id, now, True, content, tomb))

    async def purge(self, resource_type: str, resource_id: str, tag: dict) -> int | None:
        """Retention: every stored version of the resource becomes a tombstone carrying `tag`, the resource is
        deleted (reads answer 410) and its index rows go; its party and recorder rows stay. The current version, or
        None if there is no such resource."""
        await self._flushed()
        key = (resource_type, resource_id)
        row = (await self.conn.execute(select(resource.c.version_id, resource.c.last_updated).where(
            resource.c.resource_type == resource_type, resource.c.id == resource_id))).first()
        if row is None:
            return None
        versions = (await self.conn.execute(select(resource_version.c.version_id, resource_version.c.last_updated)
                                            .where(resource_version.c.resource_type == resource_type,
                                                   resource_version.c.id == resource_id))).all()
        if versions:
            await self.conn.execute(_PURGE_VERSION, [
                {"p_type": resource_type, "p_id": resource_id, "p_version": v.version_id,
                 "p_content": _dumps(tombstone(resource_type, resource_id, v.version_id, v.last_updated, tag))}
                for v in versions])
        await self.conn.execute(update(resource).where(resource.c.resource_type == resource_type,
                                                       resource.c.id == resource_id).values(
            deleted=True, content=_dumps(tombstone(resource_type, resource_id, row.version_id, row.last_updated, tag))))
        await direct.execute(self.conn, _UNINDEX_ONE, {"u_type": resource_type, "u_id": resource_id})
        self._forget_referring(resource_type)
        self._indexed.pop(key, None)
        self._current.pop(key, None)  # (read again, it is the tombstone)
        return row.version_id

    async def _write_version(self, current: StoredResource, version_id: int, now: datetime, content: str,
                             deleted: bool, method: str, lost: BaseException | None) -> None:
        """Move the current row to `version_id` if it is still at `current`'s version, and keep the version. In a
        deferred unit the move waits for the flush with the unit's other rows (`Pending.move`: one round trip
        fewer), so a lost race is known only there: the move is the flush's first part, and nothing else of the
        flush is written without it; the unit's memory holds the new version meanwhile, as for any deferred row."""
        key = (current.resource_type, current.id)
        lost = lost if lost is not None else Superseded(f"{current.reference} was changed by another request")
        row = dict(version_id=version_id, last_updated=to_db(now), deleted=deleted, content=content)
        if self.deferred:
            self._pending.move(key, current.version_id, row, lost)
        elif await direct.execute(self.conn, _MOVE_ROW, {
                "m_type": key[0], "m_id": key[1], "m_from": current.version_id, "m_to": version_id,
                "m_at": row["last_updated"], "m_deleted": deleted, "m_content": content}) != 1:
            raise lost
        await self._keep_version(dict(row, resource_type=key[0], id=key[1], method=method))

    async def _keep_version(self, values: dict) -> None:
        if self.deferred:
            self._pending.versions.append(values)
        else:
            await direct.execute(self.conn, _INSERT_VERSION, values)

    async def set_recorder(self, resource_type: str, resource_id: str, organization_id: str) -> None:
        self._recorders[(resource_type, resource_id)] = organization_id
        row = {"resource_type": resource_type, "resource_id": resource_id, "organization_id": organization_id}
        if self.deferred:
            self._pending.recorders.append(row)
        else:
            await direct.execute(self.conn, _INSERT_RECORDER, row)

    async def add_parties(self, resource_type: str, resource_id: str, organization_ids: Iterable[str]) -> None:
        key = (resource_type, resource_id)
        missing = set(organization_ids) - await self.parties(resource_type, resource_id)
        if not missing:
            return
        self._parties[key] |= missing
        if self.deferred:
            going = self._pending.unparties.get(key, set())
            kept = going & missing  # stored rows the unit was to remove: they simply stay
            going -= kept
            if missing - kept:
                self._pending.parties.setdefault(key, set()).update(missing - kept)
        else:
            await direct.executemany(self.conn, _INSERT_PARTY, [
                dict(resource_type=resource_type, resource_id=resource_id, organization_id=o) for o in sorted(missing)])

    async def remove_parties(self, resource_type: str, resource_id: str, organization_ids: Iterable[str]) -> None:
        await self.remove_parties_many([(resource_type, resource_id, organization_ids)])

    async def remove_parties_many(self, removals: Iterable[tuple[str, str, Iterable[str]]]) -> None:
        """Several resources' party rows in one statement: (type, id, organisations) each; in a deferred unit, in
        its flush (`Pending.unparties`: rows of a resource whose party set the unit knows are the rows it knows
        stored; of another, the reads that learn its set keep only those, `Reads.parties`)."""
        wanted = []
        for t, i, orgs in removals:
            orgs = set(orgs)
            known = self._parties.get((t, i))
            if known is not None:
                if self.deferred:
                    orgs &= known  # (the rows there are, stored or pending)
                known -= orgs
            pending = self._pending.parties.get((t, i))
            if pending:  # rows not written yet are simply not written (they are never in the database too)
                unwritten = pending & orgs
                pending -= unwritten
                orgs -= unwritten
            if orgs and self.deferred:
                self._pending.unparties.setdefault((t, i), set()).update(orgs)
            elif orgs:
                wanted.append((t, i, sorted(orgs)))
        if not wanted:
            return
        await self.conn.execute(delete(resource_party).where(or_(*(
            and_(resource_party.c.resource_type == t, resource_party.c.resource_id == i,
                 resource_party.c.organization_id.in_(orgs)) for t, i, orgs in wanted))))

    async def lock_condition(self, resource_type: str, condition: str, dialect: str) -> None:
        """Upsert the condition's lock row: concurrent transactions with the same condition queue here."""
        key = hashlib.sha256(condition.encode()).hexdigest()
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = dialect_insert(condition_lock).values(resource_type=resource_type, condition=key, counter=1)
        stmt = stmt.on_conflict_do_update(index_elements=["resource_type", "condition"],
                                          set_={"counter": condition_lock.c.counter + 1})
        await self.conn.execute(stmt)

    async def _write_index(self, resource_type: str, resource_id: str, rows: Iterable[IndexRow],
                           last_updated: datetime) -> None:
        """The rows of the version written at `last_updated` (each carries it: search_sql.plan_search orders by it)."""
        at = to_db(last_updated)
        payload = [dict(resource_type=resource_type, resource_id=resource_id, param=r.param, system=r.system,
                        value=r.value, text=r.text,
                        date_start=to_db(r.date_start) if r.date_start else None,
                        date_end=to_db(r.date_end) if r.date_end else None, last_updated=at) for r in rows]
        self._forget_referring(resource_type)
        self._indexed[(resource_type, resource_id)] = payload  # (the unit's own rows, written or not)
        if self.deferred:
            self._pending.index[(resource_type, resource_id)] = payload  # (replaces rows an earlier write left)
        elif payload:
            await direct.executemany(self.conn, _INSERT_INDEX, payload)

    def _forget_referring(self, resource_type: str) -> None:
        for key in [k for k in self._referring if k[0] == resource_type]:
            del self._referring[key]

    async def _delete_index(self, resource_type: str, resource_id: str) -> None:
        self._forget_referring(resource_type)
        key = (resource_type, resource_id)
        self._indexed.pop(key, None)
        if not self.deferred:
            await direct.execute(self.conn, _UNINDEX_ONE, {"u_type": resource_type, "u_id": resource_id})
            return
        self._pending.index.pop(key, None)
        if key not in self._pending.fresh:  # (rows of a resource created since the last flush were never stored)
            self._pending.unindex[key] = None
