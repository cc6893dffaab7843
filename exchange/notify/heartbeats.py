"""Heartbeats (backport IG): an active subscription with a heartbeat period and nothing pending gets a heartbeat
row queued when its next heartbeat is due; a subscription whose stored spec cannot be read is reported and put off,
so it never holds up the others."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import select

from exchange.notify import queue
from exchange.notify.leases import pending, skip_locked
from exchange.notify.spec import SubscriptionSpec
from exchange.notify.tables import subscription_state as state
from exchange.store.clock import to_db, utcnow
from exchange.store.engine import Database


async def enqueue_due(db: Database, put_off: Callable[[datetime], datetime],
                      report: Callable[[str, Exception], None]) -> None:
    """Queue the heartbeats that are due (at most 100 a pass) and schedule each subscription's next one."""
    now = utcnow()
    async with db.transaction() as conn:
        rows = (await conn.execute(skip_locked(db,
            select(state.c.subscription_id, state.c.spec)
            .where(state.c.status == "active", state.c.next_heartbeat.is_not(None),
                   state.c.next_heartbeat <= to_db(now), ~pending()).limit(100)))).all()
        for row in rows:
            try:
                spec = SubscriptionSpec.loads(row.spec)
            except Exception as exc:  # noqa: BLE001 - a bad row is reported and put off, the others go on
                report(row.subscription_id, exc)
                await queue.set_state(conn, row.subscription_id, next_heartbeat=to_db(put_off(now)))
                continue
            await queue.enqueue(conn, row.subscription_id, "heartbeat", now)
            await queue.set_state(conn, row.subscription_id,
                                  next_heartbeat=to_db(now + timedelta(seconds=spec.heartbeat or 0))
                                  if spec.heartbeat else None)
