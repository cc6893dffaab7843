"""An agent's events in log order (issue 12, scale): (organization_id, entry) and (client_id, entry) on audit_event.

"This organisation's newest events" (`AuditEvent?agent=Organization/x&_sort=-date`) is sorted by the log's own
order; with only (organization_id, recorded) PostgreSQL walked the whole log backwards for it (3,159 buffers,
440 ms at 100,000 referrals, and growing with the log); with these it reads one page of the index (24 buffers).

Revision ID: 0700_audit_agent_order
Revises: 0502_audit_linker
"""
from alembic import op

revision = "0700_audit_agent_order"
down_revision = "0502_audit_linker"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_org_entry", "audit_event", ["organization_id", "entry"])
    op.create_index("ix_audit_client_entry", "audit_event", ["client_id", "entry"])


def downgrade() -> None:
    op.drop_index("ix_audit_client_entry", table_name="audit_event")
    op.drop_index("ix_audit_org_entry", table_name="audit_event")
