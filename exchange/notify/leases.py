"""Leases: which dispatcher delivers to a subscription now. A dispatcher leases a few subscriptions that have due
work (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several `exchange worker` processes share the load without waiting
on each other; SQLite serialises writers, and one dispatcher is expected there). A lease expires after
`notify_lease_seconds`, so a crashed worker's subscriptions are picked up by another; it is renewed before every
delivery and released afterwards."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, update

from exchange.notify import queue
from exchange.notify.tables import notification_outbox as outbox, subscription_state as state
from exchange.store.clock import to_db, utcnow
from exchange.store.engine import Database


def skip_locked(db: Database, query):  # noqa: ANN001, ANN201
    """The query's rows locked for this transaction, skipping those another dispatcher holds (PostgreSQL)."""
    return query if db.is_sqlite else query.with_for_update(skip_locked=True, of=state)


def pending():  # noqa: ANN201
    """The subscription has an outbox row still to deliver."""
    return exists().where(outbox.c.subscription_id == state.c.subscription_id, outbox.c.state == "pending")


async def claim(db: Database, worker_id: str, limit: int, lease_seconds: float) -> list[str]:
    """Lease up to `limit` subscriptions with due work that nobody holds; their ids, oldest subscription first."""
    now = to_db(utcnow())
    until = now + timedelta(seconds=lease_seconds)
    async with db.transaction() as conn:
        ids = list((await conn.execute(skip_locked(db,
            select(state.c.subscription_id)
            .where(state.c.status.in_(queue.DELIVERING),
                   or_(state.c.lease_until.is_(None), state.c.lease_until < now),
                   or_(state.c.retry_at.is_(None), state.c.retry_at <= now), pending())
            .order_by(state.c.created, state.c.subscription_id).limit(limit)))).scalars())
        if ids:
            await conn.execute(update(state).where(state.c.subscription_id.in_(ids))
                               .values(lease_owner=worker_id, lease_until=until))
    return ids


async def renew(conn, subscription_id: str, worker_id: str, lease_seconds: float, now: datetime) -> bool:  # noqa: ANN001
    """Extend this worker's lease while the subscription still delivers and is not waiting for a retry; False when
    the lease is lost or nothing is due."""
    renewed = await conn.execute(
        update(state).where(state.c.subscription_id == subscription_id,
                            state.c.lease_owner == worker_id, state.c.status.in_(queue.DELIVERING),
                            or_(state.c.retry_at.is_(None), state.c.retry_at <= now))
        .values(lease_until=now + timedelta(seconds=lease_seconds)))
    return renewed.rowcount == 1


async def release(db: Database, subscription_id: str, worker_id: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(update(state).where(state.c.subscription_id == subscription_id,
                                               state.c.lease_owner == worker_id)
                           .values(lease_owner=None, lease_until=None))
