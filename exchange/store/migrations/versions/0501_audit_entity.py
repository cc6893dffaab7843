"""The exchange log: the first entity of each AuditEvent in the event row itself (one INSERT per event).

Revision ID: 0501_audit_entity
Revises: 0500_audit
"""
from alembic import op
import sqlalchemy as sa

revision = "0501_audit_entity"
down_revision = "0500_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_event") as batch:
        batch.add_column(sa.Column("entity_type", sa.String(64)))
        batch.add_column(sa.Column("entity_id", sa.String(64)))
    op.create_index("ix_audit_event_entity", "audit_event", ["entity_type", "entity_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_event_entity", "audit_event")
    with op.batch_alter_table("audit_event") as batch:
        batch.drop_column("entity_id")
        batch.drop_column("entity_type")
