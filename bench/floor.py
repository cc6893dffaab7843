"""The floor: the rows a referral lifecycle stores, written by the same transactions directly with asyncpg.

No HTTP, no FHIR parsing or validation, no tokens, no rules: per lifecycle five transactions on a database with the
exchange's own schema, each writing what the exchange writes for that step (resource and version rows, search-index
rows computed by the exchange's own indexer, access-party rows, AuditEvents of the same size, and the reads the step
needs). Each step's rows are derived (index rows, meta) inside its timing, as the exchange derives them inside its
request's. Each step's writes are one statement, as the exchange's are (data-modifying CTEs over arrays,
exchange.store.writes): a floor that sent a statement a row would cost the database more round trips than the
exchange does and would not be a floor. What the exchange achieves divided by this is the overhead of everything
above the database.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import datetime, timezone

import asyncpg
import orjson

from lifecycle import OUTPUT, Samples  # noqa: I001
from world import Referrals, World


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


_COLUMNS = {
    "resource": ("resource_type", "id", "version_id", "last_updated", "deleted", "content"),
    "resource_version": ("resource_type", "id", "version_id", "last_updated", "deleted", "method", "content"),
    "search_index": ("resource_type", "resource_id", "param", "system", "value", "text", "date_start", "date_end",
                     "last_updated"),
    "resource_party": ("resource_type", "resource_id", "organization_id"),
    "audit_event": ("id", "recorded", "subtype", "action", "outcome", "client_id", "organization_id",
                    "entity_type", "entity_id", "content"),
}
_STATEMENTS: dict[tuple[bool, bool, bool], str] = {}


def _columns(rows: list[tuple], width: int) -> list[list]:
    return [[row[i] for row in rows] for i in range(width)]


def _audit_arrays(records: list[tuple]) -> list[list]:
    """audit_event's columns, then each record's id and hash again (its chain row's)."""
    return _columns(records, len(_COLUMNS["audit_event"])) + [[r[0] for r in records], [r[-1] for r in records]]


def _sql(writes: bool, update: bool, parties: bool) -> str:
    """One statement for a step: (`writes`) the resources' rows, as new rows or (`update`) as moves of their
    current rows with their stored index rows replaced, (`parties`) with party rows; then the AuditEvents and
    their chain rows. The arrays are typed by the exchange's own tables, and the resources' first: $1 their types,
    $2 their ids. Built once a shape."""
    key = (writes, update, parties)
    if key in _STATEMENTS:
        return _STATEMENTS[key]
    from sqlalchemy.dialects import postgresql

    from exchange.audit.tables import audit_event
    from exchange.store import tables

    dialect = postgresql.dialect()
    known = {"audit_event": audit_event, **{t: getattr(tables, t) for t in _COLUMNS if t != "audit_event"}}
    number = 1

    def arrays(table: str) -> str:
        nonlocal number
        out = ", ".join(f"${number + i}::{known[table].c[c].type.compile(dialect=dialect)}[]"
                        for i, c in enumerate(_COLUMNS[table]))
        number += len(_COLUMNS[table])
        return out

    ctes = []
    if writes:
        columns = ", ".join(_COLUMNS["resource"])
        if update:  # (every part sees the snapshot before the statement: the DELETE finds the stored rows only)
            ctes += [f"moved AS (UPDATE resource AS r SET version_id = m.version_id, last_updated = m.last_updated, "
                     f"content = m.content FROM unnest({arrays('resource')}) AS m({columns}) "
                     f"WHERE r.resource_type = m.resource_type AND r.id = m.id AND r.version_id = m.version_id - 1)",
                     "unindexed AS (DELETE FROM search_index AS s USING unnest($1::varchar[], $2::varchar[]) "
                     "AS u(t, i) WHERE s.resource_type = u.t AND s.resource_id = u.i)"]
        else:
            ctes.append(f"resources AS (INSERT INTO resource ({columns}) SELECT * FROM unnest({arrays('resource')}))")
        for table in ("resource_version", "search_index", *(("resource_party",) if parties else ())):
            ctes.append(f"{table}_rows AS (INSERT INTO {table} ({', '.join(_COLUMNS[table])}) "
                        f"SELECT * FROM unnest({arrays(table)}))")
    ctes.append(f"events AS (INSERT INTO audit_event ({', '.join(_COLUMNS['audit_event'])}) "
                f"SELECT * FROM unnest({arrays('audit_event')}) RETURNING entry, id)")
    _STATEMENTS[key] = sql = (
        "WITH " + ", ".join(ctes) + " INSERT INTO audit_chain (entry, seq, hash, linked) "
        "SELECT e.entry, nextval('floor_audit_seq'), h.hash, localtimestamp FROM events AS e "
        f"JOIN unnest(${number}::varchar[], ${number + 1}::varchar[]) AS h(id, hash) ON h.id = e.id")
    return sql


class Floor:
    def __init__(self, url: str, world: World, clients: int, progress, audit_samples: dict[str, str]) -> None:  # noqa: ANN001
        self.url = url
        self.world = world
        self.clients = clients
        self.progress = progress
        self.referrals = Referrals()
        # subtype -> a real AuditEvent of the exchange's log (canonical JSON), reused with a new id for its size
        self.audit_samples = audit_samples
        self.pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(_dsn(self.url), min_size=self.clients, max_size=self.clients)
        async with self.pool.acquire() as conn:
            await conn.execute("CREATE SEQUENCE IF NOT EXISTS floor_audit_seq")

    async def close(self) -> None:
        await self.pool.close()

    def _audit(self, subtype: str, org: str, entity: tuple[str, str]) -> tuple:
        content = self.audit_samples.get(subtype) or self.audit_samples.get("create") or "{}"
        event_id = str(uuid.uuid4())
        digest = hashlib.sha256(content.encode()).hexdigest()
        return (event_id, _now(), subtype, "E" if subtype == "search-type" else subtype[0].upper(), "0",
                "client", org, entity[0], entity[1], content, digest)

    async def _append(self, conn: asyncpg.Connection, records: list[tuple]) -> None:
        """A read's records alone (the exchange's group commit): one statement."""
        await conn.execute(_sql(False, False, False), *_audit_arrays(records))

    def _rows(self, rtype: str, rid: str, version: int, body: dict, parties: list[str]) -> dict[str, list[tuple]]:
        """The rows of one version of a resource, by table (as the exchange stores them)."""
        from exchange.fhir.indexing import index_rows
        from exchange.store.meta import with_meta

        now = _now()
        content = orjson.dumps(with_meta(body, rid, version, now.replace(tzinfo=timezone.utc))).decode()
        return {"resource": [(rtype, rid, version, now, False, content)],
                "resource_version": [(rtype, rid, version, now, False, "POST" if version == 1 else "PUT", content)],
                "search_index": [(rtype, rid, r.param, r.system, r.value, r.text,
                                  r.date_start.replace(tzinfo=None) if r.date_start else None,
                                  r.date_end.replace(tzinfo=None) if r.date_end else None, now)
                                 for r in index_rows(rtype, body)],
                "resource_party": [(rtype, rid, p) for p in parties]}

    async def _write(self, conn: asyncpg.Connection, rows: list[dict[str, list[tuple]]], records: list[tuple],
                     update: bool) -> None:
        """The step's rows and records in one statement: new resources, or (`update`) each resource's row moved
        to its new version with its index rows replaced."""
        by_table: dict[str, list[tuple]] = {}
        for one in rows:
            for table, table_rows in one.items():
                by_table.setdefault(table, []).extend(table_rows)
        args: list = []
        for table in ("resource", "resource_version", "search_index", "resource_party"):
            table_rows = by_table.get(table) or []
            if table == "resource_party" and not table_rows:
                continue
            args += _columns(table_rows, len(_COLUMNS[table]))
        await conn.execute(_sql(True, update, bool(by_table.get("resource_party"))),
                           *args, *_audit_arrays(records))

    async def lifecycle(self, samples: Samples, number: int) -> None:
        world = self.world
        hotline = world.hotlines[number % len(world.hotlines)]
        shelter = world.shelters[number % len(world.shelters)]
        bundle = self.referrals.bundle(hotline, shelter, number)
        ids = {e["fullUrl"]: (e["resource"]["resourceType"], str(uuid.uuid4())) for e in bundle["entry"]}
        mapping = {url: f"{t}/{i}" for url, (t, i) in ids.items()}
        from world import _rewrite

        bodies = [(ids[e["fullUrl"]], _rewrite(e["resource"], mapping)) for e in bundle["entry"]]
        parties = [hotline.organization_id, shelter.organization_id]
        task_id = next(i for (t, i), _ in bodies if t == "Task")
        task_body = next(b for (t, _), b in bodies if t == "Task")
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            started = time.perf_counter()
            async with conn.transaction():
                await self._write(conn, [self._rows(rtype, rid, 1, body, parties) for (rtype, rid), body in bodies],
                                  [self._audit("create", hotline.organization_id, key) for key, _ in bodies], False)
            samples.add("transaction", time.perf_counter() - started)

            started = time.perf_counter()
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT r.* FROM resource r WHERE r.resource_type='Task' AND r.deleted=false "
                    "AND EXISTS (SELECT 1 FROM search_index s WHERE s.resource_type='Task' AND s.resource_id=r.id "
                    "AND s.param='owner' AND s.system='HealthcareService' AND s.value=$1) "
                    "AND EXISTS (SELECT 1 FROM search_index s WHERE s.resource_type='Task' AND s.resource_id=r.id "
                    "AND s.param='status' AND s.value='requested') "
                    "AND EXISTS (SELECT 1 FROM resource_party p WHERE p.resource_type='Task' AND p.resource_id=r.id "
                    "AND p.organization_id=$2) ORDER BY r.last_updated DESC LIMIT 50",
                    shelter.service_id, shelter.organization_id)
                await self._append(conn, [self._audit("search-type", shelter.organization_id, ("Task", r["id"]))
                                          for r in rows[:1]] or [self._audit("search-type", shelter.organization_id,
                                                                             ("Task", task_id))])
            samples.add("inbox", time.perf_counter() - started)

            for version, step, body in ((2, "accept", dict(task_body, status="accepted")),
                                        (3, "complete", dict(task_body, status="completed", output=OUTPUT))):
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.fetchrow("SELECT * FROM resource WHERE resource_type='Task' AND id=$1 AND EXISTS "
                                        "(SELECT 1 FROM resource_party p WHERE p.resource_type='Task' AND "
                                        "p.resource_id=$1 AND p.organization_id=$2)", task_id,
                                        shelter.organization_id)
                    await self._write(conn, [self._rows("Task", task_id, version, body, [])],
                                      [self._audit("update", shelter.organization_id, ("Task", task_id))], True)
                samples.add(step, time.perf_counter() - started)

            started = time.perf_counter()
            async with conn.transaction():
                await conn.fetch("SELECT * FROM audit_event WHERE (entity_type='Task' AND entity_id=$1) OR id IN "
                                 "(SELECT event_id FROM audit_entity WHERE resource_type='Task' AND resource_id=$1) "
                                 "ORDER BY recorded DESC LIMIT 20", task_id)
                await self._append(conn, [self._audit("search-type", world.auditor.organization_id,
                                                      ("AuditEvent", task_id))])
            samples.add("audit", time.perf_counter() - started)

    async def run(self, count: int) -> Samples:
        samples = Samples()
        numbers = iter(range(count))
        bar = self.progress.add_task("floor (asyncpg)", total=count)

        async def worker() -> None:
            for number in numbers:
                await self.lifecycle(samples, number)
                samples.completed += 1
                self.progress.advance(bar)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.clients)))
        samples.elapsed = time.perf_counter() - started
        return samples
