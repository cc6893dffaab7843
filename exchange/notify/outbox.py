"""The outbox hook: before a unit of work commits, each Task or ServiceRequest it created or updated becomes a
numbered event row for every live subscription whose topic and filters match, in the SAME transaction (the rows go
with the unit's final flush, `Unit.add_rows`; their numbers are taken, and the counters locked, before). A change
therefore never commits without its notifications, and a rolled-back change leaves none.

Which subscriptions are live changes rarely, yet every write asked the database. Each process now keeps them all
(`LiveSubscriptions`) with the generation they were read at; triggers move the generation in every transaction that
adds, removes or changes a state row (through any process, the dispatcher, a job), and the bearer check reads it
along (`Exchange.read_along`). A write uses the copy when it is of that generation, and reads it anew when not.
So a write sees every subscription change committed before its request's first statement, in every process. The
per-write lookup guaranteed no more: under READ COMMITTED it missed a change committed between the lookup and the
write's commit; for a change concurrent with the request the window now opens at the bearer check, not at the
lookup. Units without the value (the exchange's own, a batch's later entries, the web inbox) and units that wrote a
Subscription themselves ask their own transaction, as before."""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.notify import queue
from exchange.notify.spec import SubscriptionSpec
from exchange.notify.tables import notification_outbox as outbox
from exchange.notify.topics import TOPIC_TYPES, filter_matches, topics_for
from exchange.store.clock import to_db, utcnow
from exchange.kernel.unit import Failure, Unit

_TRIGGERS = {"create": "C", "update": "U"}
log = logging.getLogger("exchange.notify")


GENERATION = "notify.subscription_generation"  # its key in `Exchange.read_along` and `Unit.read_along`


class OutboxHook:
    def __init__(self) -> None:
        self._live: queue.LiveSubscriptions | None = None  # this process's copy

    async def _live_of(self, unit: Unit, topics: list[str]) -> Mapping[str, Sequence[queue.LiveSubscription]]:
        """The live subscriptions of `topics` as of the request's first statement (or later): the process's copy
        when the generation read along is its own, else read (and kept) anew; the database's answer in the unit's
        own transaction when it has no generation or wrote a Subscription itself."""
        current = unit.read_along.get(GENERATION)
        if not topics or current is None or any(e.resource_type == "Subscription" for e in unit.events):
            return await queue.states_for_topics(unit.conn, topics)
        live = self._live
        if live is None or live.generation != current:
            live = self._live = await queue.live_subscriptions(unit.conn)  # (its own snapshot: as new or newer)
        return live.of(topics)

    async def before_commit(self, unit: Unit) -> None:
        changes = [e for e in unit.events if e.resource_type in TOPIC_TYPES and e.stored is not None
                   and _TRIGGERS.get(e.interaction) == e.action]
        if not changes:
            return
        now = to_db(utcnow())
        fired = [(event, [topic for topic in topics_for(event.resource_type, event.interaction)
                          if topic.fired_by(event.previous.resource if event.previous is not None else None,
                                            event.stored.resource)]) for event in changes]
        by_topic = await self._live_of(unit, [topic.canonical for _, topics in fired for topic in topics])
        matched: dict[str, list] = {}  # subscription id -> events, in the unit's order
        for event, topics in fired:
            body = event.stored.resource
            parties: set[str] | None = None
            for topic in topics:
                for row in by_topic[topic.canonical]:
                    try:
                        spec = SubscriptionSpec.loads(row.spec)
                        if spec.ended(now):
                            continue
                        if not await filter_matches(unit.repo, topic, spec.filters, event.resource_id, body):
                            continue
                    except Exception as exc:  # noqa: BLE001 - an unreadable subscription must not block writes
                        log.warning("outbox skipped Subscription %s: %s", row.subscription_id, type(exc).__name__)
                        continue
                    if row.organization_id is not None:  # only what the subscriber may see
                        if parties is None:
                            parties = await unit.repo.parties(event.resource_type, event.resource_id)
                        if row.organization_id not in parties:
                            continue
                    matched.setdefault(row.subscription_id, []).append(event)
        if not matched:
            return
        first = await queue.take_event_numbers(unit.conn, {sid: len(events) for sid, events in matched.items()},
                                               lock_rows=unit.dialect != "sqlite")
        await unit.add_rows(outbox, queue.event_rows([
            {"subscription_id": sid, "event_number": first[sid] + i, "focus_type": event.resource_type,
             "focus_id": event.resource_id, "focus_version": event.version_id,
             "method": "POST" if event.interaction == "create" else "PUT", "occurred": now}
            for sid in sorted(matched) for i, event in enumerate(matched[sid])]))

    async def on_failure(self, conn: AsyncConnection, failure: Failure) -> None:
        return None  # a failed change has no events: its transaction (and its outbox rows) rolled back
