"""The web inbox's tables: staff accounts (people, not clients), their server-side sessions, pending alert e-mails.

Declared on the store's shared `metadata`; the migration `web_0001` creates them.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Index, Integer, String, Table

from exchange.store.tables import metadata

BigId = BigInteger().with_variant(Integer, "sqlite")

# One row per person. The password only as an argon2id hash; the TOTP secret is needed to check codes.
web_staff = Table(
    "web_staff", metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("organization_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),  # caseworker | supervisor | auditor
    Column("password_hash", String(255), nullable=False),
    Column("totp_secret", String(64), nullable=False),
    Column("totp_last_step", BigInteger),  # the last accepted TOTP time step: a code is accepted once
    Column("locale", String(8)),
    Column("active", Boolean, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("locked_until", DateTime(timezone=False)),
    Column("created", DateTime(timezone=False), nullable=False),
    Column("updated", DateTime(timezone=False), nullable=False),
    Index("ix_web_staff_org", "organization_id"),
)

# A signed-in session: the cookie carries a random token, the table only its SHA-256.
web_session = Table(
    "web_session", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("staff_id", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created", DateTime(timezone=False), nullable=False),
    Column("last_seen", DateTime(timezone=False), nullable=False),
    Index("ix_web_session_staff", "staff_id"),
)

# An alert to an organisation's referral address, written in the transaction of the change that causes it, so no
# alert is lost and none is sent for a change that rolled back. It holds no survivor data: a kind and a recipient.
web_alert = Table(
    "web_alert", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("organization_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # new | answered | overdue | emergency
    Column("created", DateTime(timezone=False), nullable=False),
    Column("sent", DateTime(timezone=False)),
    Column("attempts", Integer, nullable=False),
    Index("ix_web_alert_pending", "sent", "id"),
)
