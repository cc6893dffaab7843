"""Reads the exchange log into `referral_fact`: the Tasks that new linked records changed get their facts again.

A pass, in short transactions of its own (never the request path's): take the statistics lock (PostgreSQL: an
advisory lock, so passes of all processes take turns; SQLite: the write lock), read the position
(`stats_state.seq`), take the next linked records that changed a Task (create, update, delete, and the purge),
recompute those Tasks' facts from their stored versions (`exchange.stats.facts.derive`), move the position, commit.
A change becomes visible to statistics once its record is linked and a pass ran: the server runs one every
`stats_integrate_seconds`, and every statistics request runs one first (bounded, so a huge backlog after an
upgrade is left to the background job; the report says when it is behind).
"""
from __future__ import annotations

from collections import defaultdict

import orjson
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.audit.tables import audit_chain, audit_event, audit_head
from exchange.stats import facts
from exchange.stats.tables import referral_fact, stats_state
from exchange.store.clock import from_db, to_db
from exchange.store.tables import resource, resource_version

LOCK_KEY = 0x7374617473  # "stats"
BATCH = 2000


async def _position(conn: AsyncConnection) -> int:
    seq = (await conn.execute(select(stats_state.c.seq).where(stats_state.c.id == 1))).scalar()
    if seq is None:
        await conn.execute(insert(stats_state).values(id=1, seq=0))
        return 0
    return int(seq)


async def _head(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(audit_head.c.seq).where(audit_head.c.id == 1))).scalar() or 0)


async def behind(conn: AsyncConnection) -> int:
    """Linked log records not yet read into the statistics (of every kind: an upper bound of what is missing)."""
    return max(0, await _head(conn) - await _position(conn))


async def _bodies(conn: AsyncConnection, resource_type: str, ids: set[str]) -> dict[str, dict]:
    if not ids:
        return {}
    rows = (await conn.execute(select(resource.c.id, resource.c.content).where(
        resource.c.resource_type == resource_type, resource.c.id.in_(sorted(ids)),
        resource.c.deleted.is_(False)))).all()
    return {r.id: orjson.loads(r.content) for r in rows}


def _row(fact: facts.Fact) -> dict:
    def db(value):  # noqa: ANN001, ANN202
        return to_db(value) if value is not None else None

    return {"task_id": fact.task_id, "sent": db(fact.sent), "month": fact.month, "service_type": fact.service_type,
            "priority": fact.priority, "area_id": fact.area_id, "owner_org": fact.owner_org,
            "outcome": fact.outcome, "reason": fact.reason, "acknowledged": db(fact.acknowledged),
            "acknowledge_seconds": fact.acknowledge_seconds, "decide_seconds": fact.decide_seconds,
            "complete_seconds": fact.complete_seconds, "acknowledge_due": db(fact.acknowledge_due),
            "action_due": db(fact.action_due)}


async def refresh(conn: AsyncConnection, task_ids: set[str]) -> None:
    """Recompute the facts of these Tasks from their stored versions (in `conn`'s transaction)."""
    if not task_ids:
        return
    rows = (await conn.execute(
        select(resource_version.c.id, resource_version.c.last_updated, resource_version.c.content)
        .where(resource_version.c.resource_type == "Task", resource_version.c.id.in_(sorted(task_ids)))
        .order_by(resource_version.c.id, resource_version.c.version_id))).all()
    history: dict[str, list[facts.Version]] = defaultdict(list)
    for row in rows:
        history[row.id].append(facts.Version(from_db(row.last_updated), orjson.loads(row.content)))
    requests = await _bodies(conn, "ServiceRequest",
                             {i for v in history.values() if v and (i := facts.request_id(v[-1].body))})
    service_ids = {s for task_id, versions in history.items() if versions
                   and (s := facts.receiving_service(versions[-1].body,
                                                     requests.get(facts.request_id(versions[-1].body) or "")))}
    services = {i: facts.service_of(b) for i, b in (await _bodies(conn, "HealthcareService", service_ids)).items()}
    derived, gone = [], []
    for task_id in sorted(task_ids):
        versions = history.get(task_id, [])
        if facts.purged(versions) or not versions:
            continue  # purged (retention): what was derived before stands
        fact = facts.derive(task_id, versions, requests.get(facts.request_id(versions[-1].body) or ""), services)
        (derived.append(fact) if fact is not None else gone.append(task_id))
    changed = [f.task_id for f in derived] + gone
    await conn.execute(delete(referral_fact).where(referral_fact.c.task_id.in_(changed)))
    if derived:
        await conn.execute(insert(referral_fact), [_row(f) for f in derived])


async def _pass(conn: AsyncConnection, limit: int) -> tuple[int, bool]:
    """Read up to `limit` Task records past the position; (records read, whether the log is caught up)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    position, head = await _position(conn), await _head(conn)
    if position >= head:
        return 0, True
    rows = (await conn.execute(
        select(audit_chain.c.seq, audit_event.c.entity_id).select_from(
            audit_chain.join(audit_event, audit_event.c.entry == audit_chain.c.entry)).where(
            audit_chain.c.seq > position, audit_chain.c.seq <= head, audit_event.c.entity_type == "Task",
            audit_event.c.action.in_(("C", "U", "D")), audit_event.c.outcome == "0")
        .order_by(audit_chain.c.seq).limit(limit))).all()
    await refresh(conn, {r.entity_id for r in rows if r.entity_id})
    done = len(rows) < limit
    await conn.execute(update(stats_state).where(stats_state.c.id == 1).values(
        seq=head if done else int(rows[-1].seq)))
    return len(rows), done


async def integrate(exchange, max_batches: int | None = None) -> int:  # noqa: ANN001
    """Read the log into the statistics, BATCH records a transaction, until caught up (or `max_batches`).
    Returns the number of Task records read."""
    total, batches = 0, 0
    while max_batches is None or batches < max_batches:
        async with exchange.db.transaction() as conn:
            read, done = await _pass(conn, BATCH)
        total += read
        batches += 1
        if done:
            break
    return total


async def fact_count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(referral_fact))).scalar() or 0)
