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


async def _read_head(conn: AsyncConnection) -> tuple[int, str]:
    """The chain head, locked (PostgreSQL: FOR UPDATE; SQLite: the transaction already holds the write lock)."""
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


def _chain(records: Sequence[AuditRecord], seq: int, previous: str) -> tuple[list[dict], int, str]:
    rows = []
    for record in records:
        seq += 1
        previous = link(previous, seq, record.content)
        rows.append({"seq": seq, "id": record.id, "recorded": to_db(record.recorded), "subtype": record.subtype,
                     "action": record.action, "outcome": record.outcome, "client_id": record.client_id,
                     "organization_id": record.organization_id,
                     "entity_type": record.entities[0][0] if record.entities else None,
                     "entity_id": record.entities[0][1] if record.entities else None,
                     "content": record.content.decode(), "hash": previous})
    return rows, seq, previous


class HeadHint:
    """The head this process wrote last: a guess that saves reading the head row in the common case."""

    def __init__(self) -> None:
        self.value: tuple[int, str] | None = None


async def append(conn: AsyncConnection, records: Sequence[AuditRecord], hint: HeadHint | None = None) -> None:
    """Add `records` to the end of the chain in `conn`'s transaction (which must then commit, or nothing stays).

    The head row is advanced with a compare-and-set on the head this process last wrote (one statement that also
    takes the row lock on PostgreSQL); only when another process or request moved it first is the head read
    (locked) and the chain computed again. Either way the head row lock is taken last and held to the commit.
    """
    if not records:
        return
    entity_rows = [{"event_id": r.id, "resource_type": t, "resource_id": i}
                   for r in records for t, i in r.entities[1:]]
    if entity_rows:
        await conn.execute(insert(audit_entity), entity_rows)
    advanced = False
    if hint is not None and hint.value is not None:
        start_seq, start_hash = hint.value
        rows, seq, head = _chain(records, start_seq, start_hash)
        result = await conn.execute(update(audit_head).where(
            audit_head.c.id == 1, audit_head.c.seq == start_seq, audit_head.c.hash == start_hash)
            .values(seq=seq, hash=head))
        advanced = result.rowcount == 1
    if not advanced:
        rows, seq, head = _chain(records, *await _read_head(conn))
        await conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=head))
    await conn.execute(insert(audit_event), rows)
    if hint is not None:
        hint.value = (seq, head)  # if this transaction rolls back, the next compare-and-set misses and re-reads


class AuditLog:
    """Registered in `exchange.hooks` (last, so the chain head is locked for the shortest time)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.hint = HeadHint()

    async def before_commit(self, unit: Unit) -> None:
        await append(unit.conn, records_for_events(unit.ctx, unit.interaction, unit.events, self.base_url),
                     self.hint)

    async def on_failure(self, conn: AsyncConnection, failure: Failure) -> None:
        await append(conn, [record_for_failure(failure, self.base_url)], self.hint)
