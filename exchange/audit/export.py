"""NDJSON export of a contiguous stretch of the chain (each line an AuditEvent with its sequence and hash).

A period (since, until) is widened to the contiguous run of sequence numbers between its first and last record,
so an exported segment can always be checked against checkpoints without gaps from records committed out of
time order.
"""
from __future__ import annotations

from datetime import datetime
from typing import AsyncIterator

import orjson
from sqlalchemy import func, select

from exchange.audit.chain import with_chain
from exchange.audit.tables import audit_chain, audit_event
from exchange.store.clock import to_db

BATCH = 1000


async def seq_range(conn, since: datetime | None, until: datetime | None) -> tuple[int, int] | None:  # noqa: ANN001
    where = []
    if since is not None:
        where.append(audit_event.c.recorded >= to_db(since))
    if until is not None:
        where.append(audit_event.c.recorded < to_db(until))
    row = (await conn.execute(select(func.min(audit_chain.c.seq), func.max(audit_chain.c.seq)).select_from(
        audit_chain.join(audit_event, audit_event.c.entry == audit_chain.c.entry)).where(*where))).first()
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


async def export_lines(db, since: datetime | None = None, until: datetime | None = None,  # noqa: ANN001
                       first_seq: int | None = None, last_seq: int | None = None) -> AsyncIterator[bytes]:
    """NDJSON lines (bytes, newline-terminated) of the records in the period, or in [first_seq, last_seq]."""
    async with db.engine.connect() as conn:
        if first_seq is None and last_seq is None:
            found = await seq_range(conn, since, until)
            if found is None:
                return
            first_seq, last_seq = found
        after = (first_seq or 1) - 1
        while True:
            query = select(audit_chain.c.seq, audit_event.c.content, audit_chain.c.hash) \
                .select_from(audit_chain.join(audit_event, audit_event.c.entry == audit_chain.c.entry)) \
                .where(audit_chain.c.seq > after).order_by(audit_chain.c.seq).limit(BATCH)
            if last_seq is not None:
                query = query.where(audit_chain.c.seq <= last_seq)
            rows = (await conn.execute(query)).all()
            if not rows:
                return
            for row in rows:
                yield orjson.dumps(with_chain(row.content, row.seq, row.hash)) + b"\n"
            after = rows[-1].seq
