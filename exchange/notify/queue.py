"""SQL over the notification tables: subscription state, event numbers and outbox rows.

Used inside the caller's transaction (the unit of work of a change, or one dispatcher step); never commits itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, NamedTuple, Sequence

from sqlalchemy import and_, bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.notify.bundle import NotificationEvent
from exchange.notify.spec import SubscriptionSpec
from exchange.notify.tables import (notification_outbox as outbox, subscription_generation as generation,
                                    subscription_state as state)
from exchange.store import direct
from exchange.store.clock import from_db, to_db
from exchange.store.repository import Repository

LIVE = ("requested", "active", "error")  # statuses whose events are numbered and kept (error: delivered later)
DELIVERING = ("requested", "active")


async def insert_state(conn: AsyncConnection, subscription_id: str, organization_id: str | None,
                       spec: SubscriptionSpec, status: str, now: datetime) -> None:
    await conn.execute(insert(state).values(subscription_id=subscription_id, organization_id=organization_id,
                                            topic=spec.topic, status=status, spec=spec.dumps(), events_counter=0,
                                            created=to_db(now)))


async def get_state(conn: AsyncConnection, subscription_id: str):  # noqa: ANN201
    return (await conn.execute(select(state).where(state.c.subscription_id == subscription_id))).first()


async def set_state(conn: AsyncConnection, subscription_id: str, **values) -> int:
    result = await conn.execute(update(state).where(state.c.subscription_id == subscription_id).values(**values))
    return result.rowcount


class LiveSubscription(NamedTuple):
    """What the outbox needs of a live subscription to match a change against it."""
    subscription_id: str
    organization_id: str | None  # the subscriber (None: the exchange's own)
    topic: str
    spec: str  # SubscriptionSpec JSON


_LIVE_OF_TOPICS: dict[int, direct.Statement] = {}  # by the number of topics asked for: compiled once each


def _live_of_topics(count: int) -> direct.Statement:
    """The live subscriptions of `count` topics (parameters t0 ...), in subscription id order: a write of a Task or
    ServiceRequest asks when it cannot use its process's copy (`live_subscriptions`), so the statement is built and
    compiled once per count and run on the driver."""
    statement = _LIVE_OF_TOPICS.get(count)
    if statement is None:
        statement = _LIVE_OF_TOPICS[count] = direct.Statement(
            select(state.c.subscription_id, state.c.organization_id, state.c.topic, state.c.spec)
            .where(state.c.topic.in_([bindparam(f"t{i}") for i in range(count)]),
                   state.c.status.in_([bindparam(f"s{i}", value) for i, value in enumerate(LIVE)]))
            .order_by(state.c.subscription_id))
    return statement


async def states_for_topics(conn: AsyncConnection, topics: list[str]) -> dict[str, list[LiveSubscription]]:
    """The live subscriptions of each topic, in one query: topic -> rows in subscription id order, as the caller's
    transaction sees them (its own changes included)."""
    out: dict[str, list[LiveSubscription]] = {t: [] for t in topics}
    if topics:
        wanted = sorted(set(topics))
        for row in await direct.fetch(conn, _live_of_topics(len(wanted)),
                                      {f"t{i}": topic for i, topic in enumerate(wanted)}):
            out[row["topic"]].append(LiveSubscription(row["subscription_id"], row["organization_id"], row["topic"],
                                                      row["spec"]))
    return out


# The subscriptions' generation (0 while the table is empty): triggers move it in every transaction that adds or
# removes a state row or changes what the outbox reads of one (migration notify_0002). The bearer check reads it
# along (`Exchange.read_along`), so a write knows without a statement of its own whether its process's copy of the
# live subscriptions is current.
GENERATION = func.coalesce(select(generation.c.value).where(generation.c.id == 1).scalar_subquery(), 0)


@dataclass(frozen=True)
class LiveSubscriptions:
    """Every live subscription, by topic, as of `generation`: one process's copy (exchange.notify.outbox)."""
    generation: int
    by_topic: Mapping[str, Sequence[LiveSubscription]]

    def of(self, topics: list[str]) -> dict[str, Sequence[LiveSubscription]]:
        """As `states_for_topics`: topic -> rows in subscription id order."""
        return {topic: self.by_topic.get(topic, ()) for topic in topics}


def _all_live() -> direct.Statement:
    """The generation and every live subscription in one snapshot (one row with NULLs when none is live)."""
    now = select(GENERATION.label("generation")).subquery("now")
    return direct.Statement(
        select(now.c.generation, state.c.subscription_id, state.c.organization_id, state.c.topic, state.c.spec)
        .select_from(now.outerjoin(state, state.c.status.in_([bindparam(f"s{i}", value)
                                                             for i, value in enumerate(LIVE)])))
        .order_by(state.c.subscription_id))


_ALL_LIVE = _all_live()


async def live_subscriptions(conn: AsyncConnection) -> LiveSubscriptions:
    """Every live subscription and the generation they are current at, in one statement."""
    by_topic: dict[str, list[LiveSubscription]] = {}
    rows = await direct.fetch(conn, _ALL_LIVE, {})
    for row in rows:
        if row["subscription_id"] is not None:
            by_topic.setdefault(row["topic"], []).append(LiveSubscription(
                row["subscription_id"], row["organization_id"], row["topic"], row["spec"]))
    return LiveSubscriptions(int(rows[0]["generation"]), {t: tuple(subs) for t, subs in by_topic.items()})


async def take_event_numbers(conn: AsyncConnection, counts: dict[str, int], lock_rows: bool) -> dict[str, int]:
    """Reserve `counts[id]` event numbers for each subscription; returns the first number of each range.

    The counter rows stay locked until the transaction ends, so numbers are gap-free and concurrent changes get them
    in commit order. Rows are locked in id order first (`lock_rows`, PostgreSQL) so two transactions never wait on
    each other in opposite orders; SQLite has one writer at a time anyway."""
    ids = sorted(counts)
    if lock_rows:
        await conn.execute(select(state.c.subscription_id).where(state.c.subscription_id.in_(ids))
                           .order_by(state.c.subscription_id).with_for_update())
    step = 1 if set(counts.values()) == {1} else case(counts, value=state.c.subscription_id, else_=0)
    result = await conn.execute(update(state).where(state.c.subscription_id.in_(ids))
                                .values(events_counter=state.c.events_counter + step)
                                .returning(state.c.subscription_id, state.c.events_counter))
    return {row.subscription_id: int(row.events_counter) - counts[row.subscription_id] + 1 for row in result}


def event_rows(rows: list[dict]) -> list[dict]:
    """Outbox rows of events (subscription_id, event_number, focus_type, focus_id, focus_version, method, occurred),
    for the unit of work to insert (`Unit.add_rows`)."""
    return [dict(row, kind="event-notification", state="pending", attempts=0) for row in rows]


async def enqueue(conn: AsyncConnection, subscription_id: str, kind: str, now: datetime, *,
                  event_number: int | None = None, focus_type: str | None = None, focus_id: str | None = None,
                  focus_version: int | None = None, method: str | None = None) -> None:
    await conn.execute(insert(outbox).values(subscription_id=subscription_id, kind=kind, event_number=event_number,
                                             focus_type=focus_type, focus_id=focus_id, focus_version=focus_version,
                                             method=method, occurred=to_db(now), state="pending", attempts=0))


async def cancel_pending(conn: AsyncConnection, subscription_id: str, kinds: tuple[str, ...] | None = None) -> None:
    where = [outbox.c.subscription_id == subscription_id, outbox.c.state == "pending"]
    if kinds:
        where.append(outbox.c.kind.in_(kinds))
    await conn.execute(update(outbox).where(*where).values(state="cancelled"))


async def pending_rows(conn: AsyncConnection, subscription_id: str, limit: int) -> list:
    """The subscription's queue head: a pending handshake first, then everything else in the order written."""
    return list((await conn.execute(
        select(outbox).where(outbox.c.subscription_id == subscription_id, outbox.c.state == "pending")
        .order_by((outbox.c.kind != "handshake"), outbox.c.id).limit(limit))).all())


async def events_between(conn: AsyncConnection, subscription_id: str, since: int, until: int, limit: int) -> list:
    return list((await conn.execute(
        select(outbox).where(outbox.c.subscription_id == subscription_id, outbox.c.kind == "event-notification",
                             outbox.c.event_number >= since, outbox.c.event_number <= until)
        .order_by(outbox.c.event_number).limit(limit))).all())


async def counts(conn: AsyncConnection, subscription_id: str) -> dict[str, int]:
    rows = (await conn.execute(select(outbox.c.state, func.count()).where(
        and_(outbox.c.subscription_id == subscription_id, outbox.c.kind == "event-notification"))
        .group_by(outbox.c.state))).all()
    return {r[0]: int(r[1]) for r in rows}


async def load_events(repo: Repository, rows: list, payload: str) -> list[NotificationEvent]:
    """Outbox rows as notification events (with the focus version's JSON for full-resource)."""
    events = []
    for item in rows:
        content = None
        if payload == "full-resource":
            version = await repo.vread(item.focus_type, item.focus_id, item.focus_version)
            content = version.content if version is not None and not version.deleted else None
        events.append(NotificationEvent(int(item.event_number), from_db(item.occurred), item.focus_type,
                                        item.focus_id, item.focus_version, item.method, content))
    return events
