"""The exchange log: chained AuditEvents, their entities, the chain head, signed checkpoints.

Revision ID: 0500_audit
Revises: 0002_exchange_key
"""
from alembic import op
import sqlalchemy as sa

revision = "0500_audit"
down_revision = "0002_exchange_key"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("recorded", sa.DateTime(timezone=False), nullable=False),
        sa.Column("subtype", sa.String(32), nullable=False),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("client_id", sa.String(128)),
        sa.Column("organization_id", sa.String(64)),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_org", "audit_event", ["organization_id", "recorded"])
    op.create_index("ix_audit_client", "audit_event", ["client_id", "recorded"])
    op.create_table(
        "audit_entity",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_entity_resource", "audit_entity", ["resource_type", "resource_id"])
    op.create_index("ix_audit_entity_event", "audit_entity", ["event_id"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])
    op.create_table(
        "audit_checkpoint",
        sa.Column("tree_size", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=False), nullable=False),
        sa.Column("jws", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for name in ("audit_checkpoint", "audit_head", "audit_entity", "audit_event"):
        op.drop_table(name)
