"""Who recorded each referral resource (write authority, issue 11).

Existing resources get the organisation of the client whose create the exchange log recorded (a successful create
event naming the resource); resources the exchange itself created get none.

Revision ID: 0600_recorder
Revises: 0501_audit_entity
"""
from alembic import op
import sqlalchemy as sa

revision = "0600_recorder"
down_revision = "0501_audit_entity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource_recorder",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "resource_id"),
    )
    op.execute(
        "INSERT INTO resource_recorder (resource_type, resource_id, organization_id) "
        "SELECT entity_type, entity_id, MIN(organization_id) FROM audit_event "
        "WHERE action = 'C' AND outcome = '0' AND organization_id IS NOT NULL AND entity_id IS NOT NULL "
        "AND entity_type IN ('Patient', 'Consent', 'DocumentReference', 'Procedure', 'ServiceRequest', 'Task') "
        "GROUP BY entity_type, entity_id")


def downgrade() -> None:
    op.drop_table("resource_recorder")
