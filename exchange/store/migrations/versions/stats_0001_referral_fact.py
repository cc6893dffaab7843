"""Statistics: one row of facts per referral Task (exchange.stats.tables), read from the exchange log.

The reading position starts at 0, so the first integration pass (the server's background job, or the first
statistics request) reads the whole existing log: a deployment's statistics cover its history from the start.

Revision ID: stats_0001
Revises: 0502_audit_linker
"""
from alembic import op
import sqlalchemy as sa

revision = "stats_0001"
down_revision = "0502_audit_linker"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "referral_fact",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("sent", sa.DateTime(timezone=False), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("service_type", sa.String(64), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("area_id", sa.String(64), nullable=False),
        sa.Column("owner_org", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(160), nullable=False),
        sa.Column("acknowledged", sa.DateTime(timezone=False)),
        sa.Column("acknowledge_seconds", sa.Integer),
        sa.Column("decide_seconds", sa.Integer),
        sa.Column("complete_seconds", sa.Integer),
        sa.Column("acknowledge_due", sa.DateTime(timezone=False)),
        sa.Column("action_due", sa.DateTime(timezone=False)),
    )
    op.create_index("ix_referral_fact_sent", "referral_fact", ["sent", "outcome"])
    op.create_index("ix_referral_fact_month", "referral_fact", ["month", "outcome"])
    op.create_index("ix_referral_fact_service_type", "referral_fact", ["service_type", "sent"])
    op.create_index("ix_referral_fact_area", "referral_fact", ["area_id", "sent"])
    op.create_index("ix_referral_fact_priority", "referral_fact", ["priority", "sent"])
    op.create_index("ix_referral_fact_owner", "referral_fact", ["owner_org", "sent"])
    op.create_table(
        "stats_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
    )
    op.execute("INSERT INTO stats_state (id, seq) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("stats_state")
    op.drop_table("referral_fact")
