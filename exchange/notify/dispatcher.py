"""The dispatcher: delivers the outbox, one subscription at a time per claim, in order, at least once. This module
is the loop; each of its jobs has a module of its own: leases (`leases.py`), heartbeats (`heartbeats.py`), who may
still receive an event (`withholding.py`), building, signing and posting a notification (`sending.py`), and what
an outcome does to the outbox and the subscription (`outcomes.py`).

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
import socket
import uuid
from datetime import timedelta

import httpx

from exchange.notify import heartbeats, leases, outcomes, queue
from exchange.notify.delivery import new_client
from exchange.notify.lifecycle import set_status
from exchange.notify.sending import Step, send
from exchange.notify.spec import SubscriptionSpec
from exchange.notify.withholding import still_parties
from exchange.kernel.exchange import Exchange
from exchange.store.clock import to_db, utcnow
from exchange.store.repository import Repository

log = logging.getLogger("exchange.notify")


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
    async def enqueue_heartbeats(self) -> None:
        await heartbeats.enqueue_due(self.exchange.db, self._later, self._report)

    async def claim(self, limit: int) -> list[str]:
        return await leases.claim(self.exchange.db, self.worker_id, limit, self.settings.notify_lease_seconds)

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
                if not await self._deliver(subscription_id, step):
                    break
        except Exception as exc:  # noqa: BLE001 - one bad subscription must not stop delivery to the others
            self._report(subscription_id, exc)
            async with self.exchange.db.transaction() as conn:
                await queue.set_state(conn, subscription_id, retry_at=to_db(self._later(utcnow())))
        finally:
            await leases.release(self.exchange.db, subscription_id, self.worker_id)

    async def _next(self, subscription_id: str) -> Step | None:
        """Renew the lease and take the queue head. None when the lease is lost, nothing is due, or the
        subscription reached its `end` (it is turned off)."""
        now = to_db(utcnow())
        async with self.exchange.db.transaction() as conn:
            if not await leases.renew(conn, subscription_id, self.worker_id, self.settings.notify_lease_seconds, now):
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
        allowed = await still_parties(conn, repo, row.organization_id, rows)
        return Step(row, spec, allowed, await queue.load_events(repo, allowed, spec.payload))

    async def _deliver(self, subscription_id: str, step: Step) -> bool:
        """Send the step and record its outcome; whether it was delivered."""
        outcome = await send(self.exchange, self.client, subscription_id, step)
        if outcome.ok:
            self.delivered += 1
        else:
            self.failed += 1
        await outcomes.record(self.exchange, subscription_id, step, outcome)
        return outcome.ok
