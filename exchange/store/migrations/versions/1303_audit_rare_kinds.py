"""The rare records auditors look for have indexes of their own: failed interactions, emergency uses (issue 12).

`AuditEvent?outcome=8` (or 4, 12), `AuditEvent?subtype=emergency-exception` and `exchange audit emergencies` read
the log in time order and kept the matches: at 1,000,000 referrals (6.8 M records) a page of them, or the report,
read the whole log or most of it. A partial index of each kind, (recorded, entry) of only its records
(`exchange.audit.tables.RARE_KINDS`), costs nothing when other records are written and gives a page of them in order;
the search writes those values into its SQL so that PostgreSQL can see the index applies.

Revision ID: 1303_audit_rare_kinds
Revises: 1302_audit_time_order
"""
import sqlalchemy as sa
from alembic import op

revision = "1303_audit_rare_kinds"
down_revision = "1302_audit_time_order"
branch_labels = None
depends_on = None

# (as this revision knows them: exchange.audit.tables.RARE_KINDS)
KINDS = {"ix_audit_failed": "outcome IN ('4', '8', '12')", "ix_audit_emergency": "subtype IN ('emergency-exception')"}


def upgrade() -> None:
    for name, where in KINDS.items():
        op.create_index(name, "audit_event", ["recorded", "entry"], postgresql_where=sa.text(where),
                        sqlite_where=sa.text(where))


def downgrade() -> None:
    for name in KINDS:
        op.drop_index(name, table_name="audit_event")
