"""The notification backlog, read from the outbox when a readiness probe or a scrape asks (registered as a gauge by
`notify.install`, so every process counts the whole deployment)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.notify import queue
from exchange.notify.tables import notification_outbox as outbox, subscription_state as state
from exchange.store.clock import from_db, utcnow


@dataclass(frozen=True)
class Backlog:
    pending: int  # undelivered events of subscriptions being delivered (requested, active)
    oldest_age_seconds: float  # 0 when none is waiting
    held: int  # undelivered events of subscriptions in error or off (kept until re-activated)


async def notification_backlog(conn: AsyncConnection, now: datetime | None = None) -> Backlog:
    delivering = state.c.status.in_(queue.DELIVERING)
    rows = (await conn.execute(
        select(delivering.label("delivering"), func.count(), func.min(outbox.c.occurred))
        .select_from(outbox.join(state, state.c.subscription_id == outbox.c.subscription_id))
        .where(outbox.c.state == "pending", outbox.c.kind == "event-notification")
        .group_by(delivering))).all()
    pending = held = 0
    oldest: datetime | None = None
    for is_delivering, count, first in rows:
        if is_delivering:
            pending, oldest = int(count), first
        else:
            held = int(count)
    age = max(0.0, ((now or utcnow()) - from_db(oldest)).total_seconds()) if oldest is not None else 0.0
    return Backlog(pending, age, held)
