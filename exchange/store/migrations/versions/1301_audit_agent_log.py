"""An agent's AuditEvents are found by one index a column, in log order with their time (issue 12).

audit_event had two indexes for each agent column: (organization_id, recorded) and (organization_id, entry), the
same for client_id, four of the eight index entries every record costs PostgreSQL when it is inserted. A search is
in log order (entry); with a period (`agent=…&date=…`) PostgreSQL took either the time index and sorted every match
in the period, or walked the agent's records in log order fetching each one to read its time. Now one index a
column holds (agent, entry, recorded): `agent=` reads its page off it as before, `agent=&date=` reads the agent's
entries in log order and checks the time in the index, fetching only the records in the period. At 1,000,000
referrals (6.8 M records; the busiest organisation 41,024 of them, the median 7,077), EXPLAIN (ANALYZE, BUFFERS) of
review.py's statements: a page of the busiest organisation's oldest or middle 5 % of the year, newest first, 16,550
or 8,064 buffers -> 590 or 399, the median's 1,765 or 1,521 -> 291 or 259; the page of `agent=` alone 227 -> 227;
the count of a period (`Bundle.total`) reads the agent's index entries: 10-14 -> 73 (median) and 391 (busiest).

Revision ID: 1301_audit_agent_log
Revises: 1300_search_index_patient_once, 0700_audit_agent_order (the indexes it replaces: that branch merges here)
"""
from alembic import op

revision = "1301_audit_agent_log"
down_revision = ("1300_search_index_patient_once", "0700_audit_agent_order")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_org_log", "audit_event", ["organization_id", "entry", "recorded"])
    op.create_index("ix_audit_client_log", "audit_event", ["client_id", "entry", "recorded"])
    for name in ("ix_audit_org", "ix_audit_client", "ix_audit_org_entry", "ix_audit_client_entry"):
        op.drop_index(name, table_name="audit_event")


def downgrade() -> None:
    op.create_index("ix_audit_org", "audit_event", ["organization_id", "recorded"])
    op.create_index("ix_audit_client", "audit_event", ["client_id", "recorded"])
    op.create_index("ix_audit_org_entry", "audit_event", ["organization_id", "entry"])
    op.create_index("ix_audit_client_entry", "audit_event", ["client_id", "entry"])
    op.drop_index("ix_audit_org_log", table_name="audit_event")
    op.drop_index("ix_audit_client_log", table_name="audit_event")
