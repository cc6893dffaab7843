"""The audit log's UnitHook: queues the unit's AuditEvents inside the request's own transaction, links after commit.

The request's transaction only INSERTs its records and their queue rows (with the unit's final flush:
`Unit.add_rows`; their `entry` numbers come from a database sequence), so no row is shared between requests and
nothing serialises them: no change commits without its record. A unit that changes nothing (`Unit.read_only`: a
read, a search) writes nothing in its transaction: its records, or its refusal's, go to the process's group commit
once that transaction ended (`exchange.audit.group_commit`), and it answers when they are committed. (On PostgreSQL the queue rows go in the flush's one
statement; on SQLite, where each table costs a statement of its own, a trigger on audit_event inserts them: see
`exchange.audit.tables`.) After the commit the hook kicks the linker (`exchange.audit.linker`), which integrates the
queue into the hash chain in a task of its own, coalescing the requests of one process into one pass: the response
does not wait for it. Where no such task runs (the CLI), the hook waits for the pass, so a command's records are
linked when it returns.
"""
from __future__ import annotations

import logging
from typing import Sequence

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.audit.builder import AuditRecord, record_for_failure, records_for_events
from exchange.audit.linker import Linker
from exchange.audit.tables import audit_entity, audit_event, audit_queue
from exchange.store import direct
from exchange.store.clock import to_db
from exchange.store.writes import Pending
from exchange.kernel.unit import Failure, Unit

log = logging.getLogger("exchange.audit")


def _row(record: AuditRecord) -> dict:
    return {"id": record.id, "recorded": to_db(record.recorded), "subtype": record.subtype,
            "action": record.action, "outcome": record.outcome, "client_id": record.client_id,
            "organization_id": record.organization_id,
            "entity_type": record.entities[0][0] if record.entities else None,
            "entity_id": record.entities[0][1] if record.entities else None,
            "content": record.content.decode()}


def _entity_rows(records: Sequence[AuditRecord]) -> list[dict]:
    return [{"event_id": r.id, "resource_type": t, "resource_id": i} for r in records for t, i in r.entities[1:]]


async def enqueue(conn: AsyncConnection, records: Sequence[AuditRecord]) -> None:
    """Insert `records` (unlinked) in `conn`'s transaction, which must then commit, or nothing of them stays. On
    PostgreSQL one statement (so a connection without a transaction commits it whole: `exchange.audit.group_commit`)."""
    if not records:
        return
    entity_rows = _entity_rows(records)
    if direct.is_postgres(conn):  # the records, their entities and their queue rows in one statement
        pending = Pending()
        pending.add_rows(audit_entity, entity_rows)
        pending.add_rows(audit_event, [_row(r) for r in records], QUEUED)
        await pending.write(conn)
        return
    if entity_rows:
        await direct.executemany(conn, _INSERT_ENTITY, entity_rows)
    await direct.executemany(conn, _INSERT_EVENT, [_row(r) for r in records])  # (the queue's trigger)


# Every request inserts its records with these: compiled once, run on the driver (exchange.store.direct)
_INSERT_EVENT = direct.Statement(insert(audit_event).inline(), ("id", "recorded", "subtype", "action", "outcome",
                                                                "client_id", "organization_id", "entity_type",
                                                                "entity_id", "content"))
_INSERT_ENTITY = direct.Statement(insert(audit_entity).inline(), ("event_id", "resource_type", "resource_id"))
# PostgreSQL: each record's entry, as the database draws it, into the queue in the same statement (SQLite: a trigger)
QUEUED = (audit_queue, "entry")


class AuditLog:
    """Registered in `exchange.hooks`. `group`: the process's `exchange.audit.group_commit.GroupCommit`, where the
    records of units that change nothing go."""

    def __init__(self, base_url: str, linker: Linker, group) -> None:  # noqa: ANN001
        self.base_url = base_url
        self.linker = linker
        self.group = group

    async def before_commit(self, unit: Unit) -> None:
        """The unit's records go with its final flush (on PostgreSQL in its one statement), in its transaction; a
        unit that changes nothing writes nothing there (`after_commit`)."""
        if unit.read_only:
            return
        records = records_for_events(unit.ctx, unit.interaction, unit.events, self.base_url)
        if records:
            await unit.add_rows(audit_entity, _entity_rows(records))
            await unit.add_rows(audit_event, [_row(r) for r in records],
                                QUEUED if unit.dialect == "postgresql" else None)

    async def after_commit(self, unit: Unit) -> None:
        """A unit that changed nothing answers once its records are committed, in a batch with other such units'."""
        if unit.read_only:
            await self.group.commit(records_for_events(unit.ctx, unit.interaction, unit.events, self.base_url))
        await self._link()

    async def on_failure(self, conn: AsyncConnection, failure: Failure) -> None:
        await enqueue(conn, [record_for_failure(failure, self.base_url)])

    async def after_failure(self, failure: Failure) -> None:
        """A refusal of a unit that changes nothing (told only here: `exchange.kernel.unit.record_failure`) is
        committed in a batch too, before the refusal is answered."""
        if failure.read_only:
            await self.group.commit([record_for_failure(failure, self.base_url)])
        await self._link()

    async def _link(self) -> None:
        """The records are committed: a failure to link now only delays them (the linker's next pass takes them)."""
        if self.linker.kick():
            return
        try:
            await self.linker.settle()
        except Exception as exc:  # noqa: BLE001 - the change is committed; the periodic pass links the queue
            log.error("audit linking deferred: %s", type(exc).__name__)
