"""Audit records waiting to be linked into the hash chain, read when a readiness probe or a scrape asks (registered
as a gauge by `audit.install`)."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.audit.tables import audit_event


async def audit_unlinked(conn: AsyncConnection) -> int | None:
    """Audit records queued but not yet linked into the chain; None while the log links in the request itself."""
    if "linked" not in audit_event.c:
        return None
    return int((await conn.execute(select(func.count()).select_from(audit_event)
                                   .where(audit_event.c.seq.is_(None)))).scalar_one())
