"""The dispatcher: delivers the outbox, one subscription at a time per claim, in order, at least once.

Claiming: a dispatcher leases a few subscriptions that have due work (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
several `exchange worker` processes share the load without waiting on each other; SQLite serialises writers, and
one dispatcher is expected there). A lease expires after `notify_lease_seconds`, so a crashed worker's
subscriptions are picked up by another. The lease is renewed before every delivery and released afterwards.

Ordering: a subscription's queue head is delivered before anything behind it (a pending handshake first, then rows
in the order written); on failure the head is retried with exponential back-off and jitter, and nothing behind it
is sent meanwhile. After `notify_retry_period` of failures the subscription goes to `error`; its events stay in
the outbox and are delivered, in order, once the subscriber sets it back to `requested` and the handshake succeeds.

Authorisation is checked again for each event when it is sent: if the subscriber's organisation is no longer a
party of the focus, the event is withheld (never sent, not replayed).
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import exists, or_, select, update

from exchange.notify import bundle as notification, queue
from exchange.notify.delivery import Outcome, new_client, post
from exchange.notify.lifecycle import set_status
from exchange.notify.signing import sign
from exchange.notify.spec import SubscriptionSpec
from exchange.notify.tables import notification_outbox as outbox, subscription_state as state
from exchange.ops import counters
from exchange.services import Exchange
from exchange.store.repository import Repository, from_db, to_db, utcnow

log = logging.getLogger("exchange.notify")


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential back-off with jitter: between half and all of min(cap, base * 2^(attempts-1)) seconds."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay / 2 + random.uniform(0, delay / 2)


@dataclass
class Step:
    """One notification to send: the subscription's state row and the outbox rows it carries."""
    row: object
    spec: SubscriptionSpec
    rows: list
    events: list[notification.NotificationEvent]


class Dispatcher:
    def __init__(self, exchange: Exchange, worker_id: str | None = None, client: httpx.AsyncClient | None = None):
        self.exchange = exchange
        self.settings = exchange.settings
        self.worker_id = worker_id or f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._client = client
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.delivered = 0  # notifications (HTTP requests) answered 2xx by this dispatcher
        self.failed = 0

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.exchange)
        return self._client

    # --- running ----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        # httpx logs every request with its full URL at INFO: one line per notification is noise, not a record
        logging.getLogger("httpx").setLevel(max(logging.getLogger("httpx").level, logging.WARNING))
        self._stop.clear()
        self._task = asyncio.create_task(self.run(), name=f"notify-dispatcher-{self.worker_id}")

    async def stop(self) -> None:
        """Finish the notification in flight, record its outcome, release the leases and return."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = await self.run_once()
            except Exception as exc:  # noqa: BLE001 - the loop must survive a database hiccup
                log.error("dispatcher %s: %s", self.worker_id, type(exc).__name__)
                busy = 0
            if not busy and not self._stop.is_set():
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.settings.notify_poll_interval)
                except asyncio.TimeoutError:
                    pass

    async def run_once(self) -> int:
        """Queue due heartbeats, claim subscriptions with due work and deliver to them. Returns how many."""
        await self.enqueue_heartbeats()
        claimed = await self.claim(self.settings.notify_concurrency)
        if claimed:
            await asyncio.gather(*(self.drain(subscription_id) for subscription_id in claimed))
        return len(claimed)

    async def run_until_idle(self, rounds: int = 10_000) -> None:
        """Deliver until nothing is due (retries scheduled for later are left for later)."""
        for _ in range(rounds):
            if not await self.run_once():
                return

    # --- claiming ---------------------------------------------------------------------------------------------
    def _skip_locked(self, query):  # noqa: ANN001, ANN202
        return query if self.exchange.db.is_sqlite else query.with_for_update(skip_locked=True, of=state)

    async def enqueue_heartbeats(self) -> None:
        now = utcnow()
        pending = exists().where(outbox.c.subscription_id == state.c.subscription_id, outbox.c.state == "pending")
        async with self.exchange.db.transaction() as conn:
            rows = (await conn.execute(self._skip_locked(
                select(state.c.subscription_id, state.c.spec)
                .where(state.c.status == "active", state.c.next_heartbeat.is_not(None),
                       state.c.next_heartbeat <= to_db(now), ~pending).limit(100)))).all()
            for row in rows:
                try:
                    spec = SubscriptionSpec.loads(row.spec)
                except Exception as exc:  # noqa: BLE001 - a bad row is reported and put off, the others go on
                    self._report(row.subscription_id, exc)
                    await queue.set_state(conn, row.subscription_id, next_heartbeat=to_db(self._later(now)))
                    continue
                await queue.enqueue(conn, row.subscription_id, "heartbeat", now)
                await queue.set_state(conn, row.subscription_id,
                                      next_heartbeat=to_db(now + timedelta(seconds=spec.heartbeat or 0))
                                      if spec.heartbeat else None)

    async def claim(self, limit: int) -> list[str]:
        now = to_db(utcnow())
        until = now + timedelta(seconds=self.settings.notify_lease_seconds)
        pending = exists().where(outbox.c.subscription_id == state.c.subscription_id, outbox.c.state == "pending")
        async with self.exchange.db.transaction() as conn:
            ids = list((await conn.execute(self._skip_locked(
                select(state.c.subscription_id)
                .where(state.c.status.in_(queue.DELIVERING),
                       or_(state.c.lease_until.is_(None), state.c.lease_until < now),
                       or_(state.c.retry_at.is_(None), state.c.retry_at <= now), pending)
                .order_by(state.c.created, state.c.subscription_id).limit(limit)))).scalars())
            if ids:
                await conn.execute(update(state).where(state.c.subscription_id.in_(ids))
                                   .values(lease_owner=self.worker_id, lease_until=until))
        return ids

    async def _release(self, subscription_id: str) -> None:
        async with self.exchange.db.transaction() as conn:
            await conn.execute(update(state).where(state.c.subscription_id == subscription_id,
                                                   state.c.lease_owner == self.worker_id)
                               .values(lease_owner=None, lease_until=None))

    # --- delivering -------------------------------------------------------------------------------------------
    def _later(self, now):  # noqa: ANN001, ANN202
        return now + timedelta(seconds=max(self.settings.notify_retry_max_delay, 1.0))

    def _report(self, subscription_id: str, exc: Exception) -> None:
        log.warning("dispatcher %s skipped Subscription %s: %s", self.worker_id, subscription_id, type(exc).__name__)

    async def drain(self, subscription_id: str) -> None:
        """Deliver to one subscription until its queue is empty or a delivery fails. A subscription whose rows
        cannot be read is reported and put off (retry_at), so it never holds up the others."""
        try:
            while not self._stop.is_set():
                step = await self._next(subscription_id)
                if step is None:
                    break
                if not step.rows:
                    continue  # everything at the head was withheld
                outcome = await self._send(subscription_id, step)
                await self._record(subscription_id, step, outcome)
                if not outcome.ok:
                    break
        except Exception as exc:  # noqa: BLE001 - one bad subscription must not stop delivery to the others
            self._report(subscription_id, exc)
            async with self.exchange.db.transaction() as conn:
                await queue.set_state(conn, subscription_id, retry_at=to_db(self._later(utcnow())))
        finally:
            await self._release(subscription_id)

    async def _next(self, subscription_id: str) -> Step | None:
        """Renew the lease and take the queue head. None when the lease is lost, nothing is due, or the
        subscription reached its `end` (it is turned off)."""
        now = to_db(utcnow())
        async with self.exchange.db.transaction() as conn:
            renewed = await conn.execute(
                update(state).where(state.c.subscription_id == subscription_id,
                                    state.c.lease_owner == self.worker_id, state.c.status.in_(queue.DELIVERING),
                                    or_(state.c.retry_at.is_(None), state.c.retry_at <= now))
                .values(lease_until=now + timedelta(seconds=self.settings.notify_lease_seconds)))
            if renewed.rowcount != 1:
                return None
            row = await queue.get_state(conn, subscription_id)
            spec = SubscriptionSpec.loads(row.spec)
            ended = spec.ended(now)
            step = None if ended else await self._head(conn, row, spec)
        if ended:
            await set_status(self.exchange, subscription_id, "off", next_heartbeat=None)
        return step

    async def _head(self, conn, row, spec: SubscriptionSpec) -> Step | None:  # noqa: ANN001
        """The queue head: a handshake or heartbeat alone, or up to max-count consecutive events, withholding
        events whose focus the subscriber's organisation is no longer a party of."""
        head = await queue.pending_rows(conn, row.subscription_id, max(1, spec.max_count))
        if not head:
            return None
        if head[0].kind != "event-notification":
            return Step(row, spec, head[:1], [])
        if row.status != "active":
            return None  # events wait for the handshake
        rows = []
        for item in head:
            if item.kind != "event-notification":
                break
            rows.append(item)
        repo = Repository(conn)
        allowed, withheld = [], []
        for item in rows:
            if row.organization_id is None or row.organization_id in await repo.parties(item.focus_type,
                                                                                        item.focus_id):
                allowed.append(item)
            else:
                withheld.append(item.id)
        if withheld:
            await conn.execute(update(outbox).where(outbox.c.id.in_(withheld), outbox.c.state == "pending")
                               .values(state="withheld", last_error="receiver no longer a party"))
        return Step(row, spec, allowed, await queue.load_events(repo, allowed, spec.payload))

    async def _send(self, subscription_id: str, step: Step) -> Outcome:
        kind = step.rows[0].kind
        status = {"handshake": "requested"}.get(kind, step.row.status)
        base = self.settings.fhir_base_url
        parameters = notification.status_parameters(base, subscription_id, step.spec.topic, status, kind,
                                                    int(step.row.events_counter), step.events, step.spec.payload)
        body = notification.dumps(notification.notification_bundle(base, parameters, step.events,
                                                                   step.spec.payload))
        signature = await sign(self.exchange.keys, body)
        return await post(self.client, step.spec, body, signature)

    async def _record(self, subscription_id: str, step: Step, outcome: Outcome) -> None:
        now = utcnow()
        ids = [r.id for r in step.rows]
        kind = step.rows[0].kind
        counters.count_delivery(kind, outcome.ok, outcome.status, outcome.error)
        if outcome.ok:
            self.delivered += 1
            async with self.exchange.db.transaction() as conn:
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
                await set_status(self.exchange, subscription_id, "active", expected=("requested",))
            return
        self.failed += 1
        async with self.exchange.db.transaction() as conn:
            await conn.execute(update(outbox).where(outbox.c.id.in_(ids))
                               .values(attempts=outbox.c.attempts + 1, last_error=outcome.error,
                                       state="failed" if kind != "event-notification" else "pending"))
            current = await queue.get_state(conn, subscription_id)
            failing_since = from_db(current.failing_since) if current.failing_since else now
            attempts = max(r.attempts for r in step.rows) + 1
            retry_at = now + timedelta(seconds=backoff(attempts, self.settings.notify_retry_base,
                                                       self.settings.notify_retry_max_delay))
            await conn.execute(update(state).where(state.c.subscription_id == subscription_id)
                               .values(failing_since=to_db(failing_since), retry_at=to_db(retry_at),
                                       last_error=outcome.error))
        if kind == "handshake":
            await set_status(self.exchange, subscription_id, "error", f"handshake failed: {outcome.error}",
                             expected=("requested",))
        elif (now - failing_since).total_seconds() >= self.settings.notify_retry_period:
            await set_status(self.exchange, subscription_id, "error",
                             f"delivery failing since {failing_since.isoformat(timespec='seconds')}: {outcome.error}",
                             expected=("active",))
