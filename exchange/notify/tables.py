"""The notification tables: each subscription's delivery state, and the outbox that is also its event log.

`subscription_state` holds what the dispatcher needs (status, the parsed channel, the per-subscription event counter
that is locked while an event number is taken, and the lease of the dispatcher delivering it).
`notification_outbox` holds every handshake, heartbeat and event notification in the order it was written; rows are
kept after delivery so `$events` can replay them.
`subscription_generation` is one counter that moves whenever a state row is added, removed or changes what the outbox
reads of it (triggers, migration notify_0002): the per-process copy of the live subscriptions is current while it
has not moved (exchange.notify.outbox).
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Table, Text, UniqueConstraint

from exchange.store.tables import metadata

BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite auto-increments INTEGER PRIMARY KEY only

subscription_state = Table(
    "subscription_state", metadata,
    Column("subscription_id", String(64), primary_key=True),
    Column("organization_id", String(64)),  # the subscriber; None for the exchange's own subscriptions
    Column("topic", String(255), nullable=False),
    Column("status", String(16), nullable=False),  # requested | active | error | off
    Column("spec", Text, nullable=False),  # the parsed channel and filters (JSON)
    Column("events_counter", BigInteger, nullable=False, default=0),
    Column("lease_owner", String(64)),
    Column("lease_until", DateTime(timezone=False)),
    Column("retry_at", DateTime(timezone=False)),
    Column("failing_since", DateTime(timezone=False)),
    Column("last_error", String(255)),
    Column("next_heartbeat", DateTime(timezone=False)),
    Column("created", DateTime(timezone=False), nullable=False),
    Index("ix_subscription_state_topic", "topic", "status"),
)

subscription_generation = Table(
    "subscription_generation", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # 1: the one row (absent: generation 0)
    Column("value", BigInteger, nullable=False),
)

notification_outbox = Table(
    "notification_outbox", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("subscription_id", String(64), nullable=False),
    Column("kind", String(24), nullable=False),  # handshake | heartbeat | event-notification
    Column("event_number", BigInteger),
    Column("focus_type", String(64)),
    Column("focus_id", String(64)),
    Column("focus_version", Integer),
    Column("method", String(8)),  # POST | PUT: how the focus was written
    Column("occurred", DateTime(timezone=False), nullable=False),
    Column("state", String(12), nullable=False),  # pending | delivered | withheld | failed | cancelled
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(255)),
    Column("delivered_at", DateTime(timezone=False)),
    UniqueConstraint("subscription_id", "event_number", name="uq_outbox_event_number"),
    Index("ix_outbox_queue", "subscription_id", "state", "id"),
)
