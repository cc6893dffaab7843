"""Notifications: subscription delivery state and the outbox / event log.

Revision ID: notify_0001
Revises: 0002_exchange_key
"""
from alembic import op
import sqlalchemy as sa

revision = "notify_0001"
down_revision = "0002_exchange_key"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "subscription_state",
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("organization_id", sa.String(64)),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("events_counter", sa.BigInteger, nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.DateTime(timezone=False)),
        sa.Column("retry_at", sa.DateTime(timezone=False)),
        sa.Column("failing_since", sa.DateTime(timezone=False)),
        sa.Column("last_error", sa.String(255)),
        sa.Column("next_heartbeat", sa.DateTime(timezone=False)),
        sa.Column("created", sa.DateTime(timezone=False), nullable=False),
    )
    op.create_index("ix_subscription_state_topic", "subscription_state", ["topic", "status"])
    op.create_table(
        "notification_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("subscription_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("event_number", sa.BigInteger),
        sa.Column("focus_type", sa.String(64)),
        sa.Column("focus_id", sa.String(64)),
        sa.Column("focus_version", sa.Integer),
        sa.Column("method", sa.String(8)),
        sa.Column("occurred", sa.DateTime(timezone=False), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String(255)),
        sa.Column("delivered_at", sa.DateTime(timezone=False)),
        sa.UniqueConstraint("subscription_id", "event_number", name="uq_outbox_event_number"),
    )
    op.create_index("ix_outbox_queue", "notification_outbox", ["subscription_id", "state", "id"])


def downgrade() -> None:
    op.drop_table("notification_outbox")
    op.drop_table("subscription_state")
