"""The floor: the rows a referral lifecycle stores, written by the same transactions directly with asyncpg.

No HTTP, no FHIR parsing or validation, no tokens, no rules: per lifecycle five transactions on a database with the
exchange's own schema, each writing what the exchange writes for that step (resource, version, search-index,
access-party and recorder rows, the inbox alerts, AuditEvents of the same size) with the exchange's own statement:
one multi-table INSERT a transaction (exchange.store.writes builds it), and the reads the step needs. The audit
records go in linked (their number and hash set at once, in order, by this one process), which the exchange leaves to
its linker. Rows are prepared before each step's clock starts. What the exchange achieves divided by this is the
overhead of everything above the database: HTTP, FHIR, tokens, rules, the linker, and any statement the exchange
issues beyond these.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
import uuid
from datetime import datetime, timezone

import asyncpg
import orjson

from lifecycle import OUTPUT, Samples  # noqa: I001
from world import Referrals, World

_VERSION_KEYS = ("resource_type", "id", "version_id", "last_updated", "deleted", "method", "content")
_INDEX_KEYS = ("resource_type", "resource_id", "param", "system", "value", "text", "date_start", "date_end",
               "last_updated")
_PARTY_KEYS = ("resource_type", "resource_id", "organization_id")
_ALERT_KEYS = ("organization_id", "kind", "created", "attempts")
_AUDIT_KEYS = ("seq", "id", "recorded", "subtype", "action", "outcome", "client_id", "organization_id",
               "entity_type", "entity_id", "content", "hash", "linked")


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class _Flush:
    """The rows of one transaction, by table, sent as the exchange's one statement (`exchange.store.writes`)."""

    def __init__(self) -> None:
        self.unindex: list[tuple[str, str]] = []
        self.rows: dict[str, list[tuple]] = {}

    def add(self, table: str, rows: list[tuple]) -> None:
        self.rows.setdefault(table, []).extend(rows)

    async def send(self, conn: asyncpg.Connection) -> None:
        from exchange.audit.tables import audit_event
        from exchange.store.tables import resource, resource_party, resource_recorder, resource_version, search_index
        from exchange.store.writes import _flush_postgres_sql  # noqa: PLC2701 - the exchange's own statement
        from exchange.web.tables import web_alert

        tables = {"resource": (resource, _VERSION_KEYS[:5] + _VERSION_KEYS[6:]),
                  "resource_version": (resource_version, _VERSION_KEYS), "search_index": (search_index, _INDEX_KEYS),
                  "resource_party": (resource_party, _PARTY_KEYS), "resource_recorder": (resource_recorder, _PARTY_KEYS),
                  "web_alert": (web_alert, _ALERT_KEYS), "audit_event": (audit_event, _AUDIT_KEYS)}
        parts = [(tables[name][0], tables[name][1], rows) for name, rows in self.rows.items() if rows]
        sql = _flush_postgres_sql(bool(self.unindex), tuple((table, keys) for table, keys, _ in parts))
        args: list = [[t for t, _ in self.unindex], [i for _, i in self.unindex]] if self.unindex else []
        for _, keys, rows in parts:
            args += [list(column) for column in zip(*rows)]
        await conn.execute(sql, *args)


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
        self._seq = itertools.count(1)  # the audit records' numbers: one process, taken in commit order per client

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(_dsn(self.url), min_size=self.clients, max_size=self.clients)
        async with self.pool.acquire() as conn:
            last = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM audit_event")
        self._seq = itertools.count(last + 1)

    async def close(self) -> None:
        await self.pool.close()

    def _audit(self, subtype: str, org: str, entity: tuple[str, str] | tuple[None, None]) -> tuple:
        content = self.audit_samples.get(subtype) or self.audit_samples.get("create") or "{}"
        now = _now()
        return (next(self._seq), str(uuid.uuid4()), now, subtype, "E" if subtype == "search-type" else subtype[0].upper(),
                "0", "client", org, entity[0], entity[1], content, hashlib.sha256(content.encode()).hexdigest(), now)

    @staticmethod
    def _version(flush: _Flush, rtype: str, rid: str, version: int, body: dict) -> str:
        """The version and index rows of one write into `flush`; the stored content (for the resource row)."""
        from exchange.fhir.indexing import index_rows
        from exchange.store.meta import with_meta

        now = _now()
        content = orjson.dumps(with_meta(body, rid, version, now.replace(tzinfo=timezone.utc))).decode()
        if version > 1:
            flush.unindex.append((rtype, rid))
        flush.add("resource_version", [(rtype, rid, version, now, False, "POST" if version == 1 else "PUT", content)])
        flush.add("search_index", [(rtype, rid, r.param, r.system, r.value, r.text,
                                    r.date_start.replace(tzinfo=None) if r.date_start else None,
                                    r.date_end.replace(tzinfo=None) if r.date_end else None, now)
                                   for r in index_rows(rtype, body)])
        return content

    @staticmethod
    def _alert(flush: _Flush, organization_id: str, kind: str) -> None:
        flush.add("web_alert", [(organization_id, kind, _now(), 0)])

    async def lifecycle(self, samples: Samples, number: int) -> None:
        world = self.world
        hotline = world.hotlines[number % len(world.hotlines)]
        shelter = world.shelters[number % len(world.shelters)]
        bundle = self.referrals.bundle(hotline, shelter, number)
        ids = {e["fullUrl"]: (e["resource"]["resourceType"], str(uuid.uuid4())) for e in bundle["entry"]}
        mapping = {url: f"{t}/{i}" for url, (t, i) in ids.items()}
        from world import _rewrite

        bodies = [(ids[e["fullUrl"]], _rewrite(e["resource"], mapping)) for e in bundle["entry"]]
        task_id = next(i for (t, i), _ in bodies if t == "Task")
        task_body = next(b for (t, _), b in bodies if t == "Task")
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            flush = _Flush()
            for (rtype, rid), body in bodies:
                self._version(flush, rtype, rid, 1, body)
                version_row = flush.rows["resource_version"][-1]
                flush.add("resource", [version_row[:5] + version_row[6:]])
                flush.add("resource_party", [(rtype, rid, hotline.organization_id),
                                             (rtype, rid, shelter.organization_id)])
                flush.add("resource_recorder", [(rtype, rid, hotline.organization_id)])
            self._alert(flush, shelter.organization_id, "new")
            flush.add("audit_event", [self._audit("create", hotline.organization_id, key) for key, _ in bodies])
            started = time.perf_counter()
            async with conn.transaction():
                await flush.send(conn)
            samples.add("transaction", time.perf_counter() - started)

            flush = _Flush()
            flush.add("audit_event", [self._audit("search-type", shelter.organization_id, ("Task", task_id))])
            started = time.perf_counter()
            async with conn.transaction():
                await conn.fetch(
                    "SELECT r.* FROM resource r JOIN search_index s ON s.resource_type='Task' AND s.resource_id=r.id "
                    "AND s.param='owner' AND s.value=$1 AND s.system='HealthcareService' "
                    "WHERE r.resource_type='Task' AND r.deleted IS false "
                    "AND EXISTS (SELECT 1 FROM resource_party p WHERE p.resource_type='Task' AND p.resource_id=r.id "
                    "AND p.organization_id=$2) ORDER BY s.last_updated DESC, r.id LIMIT 50",
                    shelter.service_id, shelter.organization_id)
                await flush.send(conn)
            samples.add("inbox", time.perf_counter() - started)

            for version, step, body in ((2, "accept", dict(task_body, status="accepted")),
                                        (3, "complete", dict(task_body, status="completed", output=OUTPUT))):
                flush = _Flush()
                content = self._version(flush, "Task", task_id, version, body)
                updated = flush.rows["resource_version"][-1][3]
                self._alert(flush, hotline.organization_id, "answered")
                flush.add("audit_event", [self._audit("update", shelter.organization_id, ("Task", task_id))])
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.fetchrow("SELECT * FROM resource WHERE resource_type='Task' AND id=$1 AND EXISTS "
                                        "(SELECT 1 FROM resource_party p WHERE p.resource_type='Task' AND "
                                        "p.resource_id=$1 AND p.organization_id=$2)", task_id,
                                        shelter.organization_id)
                    await conn.execute("UPDATE resource SET version_id=$3, last_updated=$4, content=$5 "
                                       "WHERE resource_type=$1 AND id=$2 AND version_id=$3 - 1", "Task", task_id,
                                       version, updated, content)
                    await flush.send(conn)
                samples.add(step, time.perf_counter() - started)

            flush = _Flush()
            flush.add("audit_event", [self._audit("search-type", world.auditor.organization_id, (None, None))])
            started = time.perf_counter()
            async with conn.transaction():
                await conn.fetchval("SELECT count(*) FROM audit_event WHERE id IN (SELECT id FROM audit_event WHERE "
                                    "entity_type='Task' AND entity_id=$1 UNION ALL SELECT event_id FROM audit_entity "
                                    "WHERE resource_type='Task' AND resource_id=$1)", task_id)
                await conn.fetch("SELECT * FROM audit_event WHERE id IN (SELECT id FROM audit_event WHERE "
                                 "entity_type='Task' AND entity_id=$1 UNION ALL SELECT event_id FROM audit_entity "
                                 "WHERE resource_type='Task' AND resource_id=$1) ORDER BY recorded DESC LIMIT 20",
                                 task_id)
                await flush.send(conn)
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
