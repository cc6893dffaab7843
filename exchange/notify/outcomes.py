"""What a delivery's outcome does to the outbox and the subscription. Delivered: the rows are marked delivered and
the subscription's failure state cleared (a handshake makes it `active`). Failed: events are retried with
exponential back-off and jitter and nothing behind them is sent meanwhile (a handshake or heartbeat row is marked
failed; a failed handshake puts the subscription in `error`); after `notify_retry_period` of failures the
subscription goes to `error`, its events kept in the outbox for when the subscriber sets it back to `requested`."""
from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import update

from exchange.notify import queue
from exchange.notify.delivery import Outcome
from exchange.notify.lifecycle import set_status
from exchange.notify.sending import Step
from exchange.notify.tables import notification_outbox as outbox, subscription_state as state
from exchange.ops import counters
from exchange.kernel.exchange import Exchange
from exchange.store.clock import from_db, to_db, utcnow


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential back-off with jitter: between half and all of min(cap, base * 2^(attempts-1)) seconds."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay / 2 + random.uniform(0, delay / 2)


async def record(exchange: Exchange, subscription_id: str, step: Step, outcome: Outcome) -> None:
    settings = exchange.settings
    now = utcnow()
    ids = [r.id for r in step.rows]
    kind = step.rows[0].kind
    counters.count_delivery(kind, outcome.ok, outcome.status, outcome.error)
    if outcome.ok:
        async with exchange.db.transaction() as conn:
            await conn.execute(update(outbox).where(outbox.c.id.in_(ids), outbox.c.state == "pending")
                               .values(state="delivered", delivered_at=to_db(now),
                                       attempts=outbox.c.attempts + 1, last_error=None))
            row = step.row
            if step.spec.heartbeat or row.retry_at or row.failing_since or row.last_error or row.next_heartbeat:
                heartbeat = to_db(now + timedelta(seconds=step.spec.heartbeat)) if step.spec.heartbeat else None
                await conn.execute(update(state).where(state.c.subscription_id == subscription_id)
                                   .values(retry_at=None, failing_since=None, last_error=None,
                                           next_heartbeat=heartbeat))
        if kind == "handshake":
            await set_status(exchange, subscription_id, "active", expected=("requested",))
        return
    async with exchange.db.transaction() as conn:
        await conn.execute(update(outbox).where(outbox.c.id.in_(ids))
                           .values(attempts=outbox.c.attempts + 1, last_error=outcome.error,
                                   state="failed" if kind != "event-notification" else "pending"))
        current = await queue.get_state(conn, subscription_id)
        failing_since = from_db(current.failing_since) if current.failing_since else now
        attempts = max(r.attempts for r in step.rows) + 1
        retry_at = now + timedelta(seconds=backoff(attempts, settings.notify_retry_base,
                                                   settings.notify_retry_max_delay))
        await conn.execute(update(state).where(state.c.subscription_id == subscription_id)
                           .values(failing_since=to_db(failing_since), retry_at=to_db(retry_at),
                                   last_error=outcome.error))
    if kind == "handshake":
        await set_status(exchange, subscription_id, "error", f"handshake failed: {outcome.error}",
                         expected=("requested",))
    elif (now - failing_since).total_seconds() >= settings.notify_retry_period:
        await set_status(exchange, subscription_id, "error",
                         f"delivery failing since {failing_since.isoformat(timespec='seconds')}: {outcome.error}",
                         expected=("active",))
