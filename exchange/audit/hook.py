"""The audit log's UnitHook: appends the unit's AuditEvents to the chain inside the request's own transaction.

Everything that does not need the chain head (building the records, their entity rows) happens first; the head
row is locked last, so on PostgreSQL concurrent requests wait for each other only for the few statements that
extend the chain and the commit. On SQLite writers are serialised by the engine already.
"""
from __future__ import annotations

from typing import Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.audit.builder import AuditRecord, record_for_failure, records_for_events
from exchange.audit.chain import GENESIS, link
from exchange.audit.tables import audit_entity, audit_event, audit_head
from exchange.store.repository import to_db
from exchange.unit import Failure, Unit


async def _lock_head(conn: AsyncConnection) -> tuple[int, str]:
    query = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:  # an emptied database (the migration seeds this row): start the chain again
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            await conn.execute(pg_insert(audit_head).values(id=1, seq=0, hash=GENESIS)
                               .on_conflict_do_nothing(index_elements=["id"]))
        else:
            await conn.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS))
        row = (await conn.execute(query)).first()
    return int(row.seq), row.hash


async def append(conn: AsyncConnection, records: Sequence[AuditRecord]) -> None:
    """Add `records` to the end of the chain in `conn`'s transaction (which must then commit, or nothing stays)."""
    if not records:
        return
    entity_rows = [{"event_id": r.id, "resource_type": t, "resource_id": i} for r in records for t, i in r.entities]
    if entity_rows:
        await conn.execute(insert(audit_entity), entity_rows)
    seq, previous = await _lock_head(conn)  # last: held from here to the commit
    rows = []
    for record in records:
        seq += 1
        previous = link(previous, seq, record.content)
        rows.append({"seq": seq, "id": record.id, "recorded": to_db(record.recorded), "subtype": record.subtype,
                     "action": record.action, "outcome": record.outcome, "client_id": record.client_id,
                     "organization_id": record.organization_id, "content": record.content.decode(),
                     "hash": previous})
    await conn.execute(insert(audit_event), rows)
    await conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=previous))


class AuditLog:
    """Registered in `exchange.hooks` (last, so the chain head is locked for the shortest time)."""

    def __init__(self, base_url: str):
        self.base_url = base_url

    async def before_commit(self, unit: Unit) -> None:
        await append(unit.conn, records_for_events(unit.ctx, unit.interaction, unit.events, self.base_url))

    async def on_failure(self, conn: AsyncConnection, failure: Failure) -> None:
        await append(conn, [record_for_failure(failure, self.base_url)])
