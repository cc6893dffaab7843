"""The outbox hook: before a unit of work commits, each Task or ServiceRequest it created or updated becomes a
numbered event row for every live subscription whose topic and filters match, in the SAME transaction (the rows go
with the unit's final flush, `Unit.add_rows`; their numbers are taken, and the counters locked, before). A change
therefore never commits without its notifications, and a rolled-back change leaves none."""
from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.notify import queue
from exchange.notify.spec import SubscriptionSpec
from exchange.notify.tables import notification_outbox as outbox
from exchange.notify.topics import TOPIC_TYPES, filter_matches, topics_for
from exchange.store.clock import to_db, utcnow
from exchange.kernel.unit import Failure, Unit

_TRIGGERS = {"create": "C", "update": "U"}
log = logging.getLogger("exchange.notify")


class OutboxHook:
    async def before_commit(self, unit: Unit) -> None:
        changes = [e for e in unit.events if e.resource_type in TOPIC_TYPES and e.stored is not None
                   and _TRIGGERS.get(e.interaction) == e.action]
        if not changes:
            return
        now = to_db(utcnow())
        fired = [(event, [topic for topic in topics_for(event.resource_type, event.interaction)
                          if topic.fired_by(event.previous.resource if event.previous is not None else None,
                                            event.stored.resource)]) for event in changes]
        by_topic = await queue.states_for_topics(unit.conn, [topic.canonical for _, topics in fired
                                                             for topic in topics])
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
