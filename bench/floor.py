"""The floor: the rows a referral lifecycle stores, written by the same transactions directly with asyncpg.

No HTTP, no FHIR parsing or validation, no tokens, no rules: per lifecycle five transactions on a database with the
exchange's own schema, each writing what the exchange writes for that step (resource and version rows, search-index
rows computed by the exchange's own indexer, access-party rows, AuditEvents of the same size, and the reads the step
needs). Rows are prepared before the clock starts. What the exchange achieves divided by this is the overhead of
everything above the database.
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
        # the rows the exchange stores for a record: itself and its chain position (linked at once: the floor has
        # no queue to write and delete)
        await conn.executemany(
            "WITH e AS (INSERT INTO audit_event (id, recorded, subtype, action, outcome, client_id, organization_id, "
            "entity_type, entity_id, content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING entry) "
            "INSERT INTO audit_chain (entry, seq, hash, linked) SELECT entry, nextval('floor_audit_seq'), $11, $2 "
            "FROM e", records)

    async def _write(self, conn: asyncpg.Connection, rtype: str, rid: str, version: int, body: dict,
                     parties: list[str]) -> None:
        from exchange.fhir.indexing import index_rows
        from exchange.store.meta import with_meta

        now = _now()
        content = orjson.dumps(with_meta(body, rid, version, now.replace(tzinfo=timezone.utc))).decode()
        if version == 1:
            await conn.execute("INSERT INTO resource (resource_type, id, version_id, last_updated, deleted, content) "
                               "VALUES ($1, $2, 1, $3, false, $4)", rtype, rid, now, content)
        else:
            await conn.execute("UPDATE resource SET version_id=$3, last_updated=$4, content=$5 "
                               "WHERE resource_type=$1 AND id=$2 AND version_id=$3 - 1", rtype, rid, version, now,
                               content)
            await conn.execute("DELETE FROM search_index WHERE resource_type=$1 AND resource_id=$2", rtype, rid)
        await conn.execute("INSERT INTO resource_version (resource_type, id, version_id, last_updated, deleted, "
                           "method, content) VALUES ($1, $2, $3, $4, false, $5, $6)", rtype, rid, version, now,
                           "POST" if version == 1 else "PUT", content)
        rows = [(rtype, rid, r.param, r.system, r.value, r.text,
                 r.date_start.replace(tzinfo=None) if r.date_start else None,
                 r.date_end.replace(tzinfo=None) if r.date_end else None, now) for r in index_rows(rtype, body)]
        if rows:  # (each with its resource's last_updated, as the exchange's: the rows the same, the indexes too)
            await conn.executemany("INSERT INTO search_index (resource_type, resource_id, param, system, value, "
                                   "text, date_start, date_end, last_updated) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                                   "$8, $9)", rows)
        if parties:
            await conn.executemany("INSERT INTO resource_party (resource_type, resource_id, organization_id) "
                                   "VALUES ($1, $2, $3)", [(rtype, rid, p) for p in parties])

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
                for (rtype, rid), body in bodies:
                    await self._write(conn, rtype, rid, 1, body, parties)
                await self._append(conn, [self._audit("create", hotline.organization_id, key) for key, _ in bodies])
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
                    await self._write(conn, "Task", task_id, version, body, [])
                    await self._append(conn, [self._audit("update", shelter.organization_id, ("Task", task_id))])
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
