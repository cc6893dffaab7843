"""The statistics tables: one row of facts per referral Task, and how far the exchange log has been read into them.

`referral_fact` holds no survivor data, no case code and no free text: the times the exchange stored each step,
codes (service type, priority, outcome, a reason code of a published CodeSystem) and directory ids (the receiving
organisation and the area its service covers). It is derived from the stored Task history, never written by the
request path: `exchange.stats.integrate` reads the exchange log from `stats_state.seq` on and recomputes the facts
of every Task the new records name. Statistics are SQL aggregates over its indexed columns.
"""
from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table

from exchange.store.tables import metadata

referral_fact = Table(
    "referral_fact", metadata,
    Column("task_id", String(64), primary_key=True),
    Column("sent", DateTime(timezone=False), nullable=False),  # first stored version not in draft
    Column("month", String(7), nullable=False),  # YYYY-MM of `sent` (UTC)
    Column("service_type", String(64), nullable=False),  # gbv-service-type code, or "" when none
    Column("priority", String(16), nullable=False),  # routine | urgent | asap | stat, or ""
    Column("area_id", String(64), nullable=False),  # Location id of the receiving service's coverage area, or ""
    Column("owner_org", String(64), nullable=False),  # the receiving Organization's id, or "" (open, unclaimed)
    Column("outcome", String(32), nullable=False),  # exchange.stats.facts.OUTCOMES
    Column("reason", String(160), nullable=False),  # system|code of the statusReason, "other" or "" (none)
    Column("acknowledged", DateTime(timezone=False)),  # first received, accepted or rejected
    Column("acknowledge_seconds", Integer),
    Column("decide_seconds", Integer),  # to the first accepted or rejected
    Column("complete_seconds", Integer),  # to completed
    Column("acknowledge_due", DateTime(timezone=False)),
    Column("action_due", DateTime(timezone=False)),
    Index("ix_referral_fact_sent", "sent", "outcome"),
    Index("ix_referral_fact_month", "month", "outcome"),
    Index("ix_referral_fact_service_type", "service_type", "sent"),
    Index("ix_referral_fact_area", "area_id", "sent"),
    Index("ix_referral_fact_priority", "priority", "sent"),
    Index("ix_referral_fact_owner", "owner_org", "sent"),
)

# One row: the chain position (audit_chain.seq) up to which the log has been read into referral_fact.
stats_state = Table(
    "stats_state", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
)
