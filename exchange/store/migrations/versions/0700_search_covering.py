"""Indexes for searching a large store (issue 12, scale): lookups that the index alone answers.

- `search_index` by value: (resource_type, param, value, system, resource_id) replaces (resource_type, param,
  value). A search such as `Task?owner=HealthcareService/x` finds its ids in the index without reading a table row
  for each (the old index had neither the target type nor the id).
- `search_index` by resource: (resource_type, resource_id, param, value, system) replaces (resource_type,
  resource_id). Checking one more criterion of a candidate (`&status=requested`) is one index probe instead of
  reading every index row of that resource.
- `audit_event` by agent in log order: (organization_id, entry) and (client_id, entry), so "this organisation's
  newest events" reads one page of the index, not every event of the organisation.

Revision ID: 0700_search_covering
Revises: 0502_audit_linker
"""
from alembic import op

revision = "0700_search_covering"
down_revision = "0502_audit_linker"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_search_lookup", "search_index", ["resource_type", "param", "value", "system", "resource_id"])
    op.drop_index("ix_search_value", table_name="search_index")
    op.create_index("ix_search_of_resource", "search_index",
                    ["resource_type", "resource_id", "param", "value", "system"])
    op.drop_index("ix_search_resource", table_name="search_index")
    op.create_index("ix_audit_org_entry", "audit_event", ["organization_id", "entry"])
    op.create_index("ix_audit_client_entry", "audit_event", ["client_id", "entry"])


def downgrade() -> None:
    op.drop_index("ix_audit_client_entry", table_name="audit_event")
    op.drop_index("ix_audit_org_entry", table_name="audit_event")
    op.create_index("ix_search_resource", "search_index", ["resource_type", "resource_id"])
    op.drop_index("ix_search_of_resource", table_name="search_index")
    op.create_index("ix_search_value", "search_index", ["resource_type", "param", "value"])
    op.drop_index("ix_search_lookup", table_name="search_index")
