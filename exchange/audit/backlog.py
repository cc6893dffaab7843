"""Audit records waiting to be linked into the hash chain, read when a readiness probe or a scrape asks (registered
as a gauge by `audit.install`)."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.audit.tables import audit_queue


async def audit_unlinked(conn: AsyncConnection) -> int | None:
    """Audit records queued but not yet linked into the chain."""
    return int((await conn.execute(select(func.count()).select_from(audit_queue))).scalar_one())
