"""Search-index rows carry their resource's last_updated (issue 12), and the value index holds it after the value.

A search on one value of a reference (`Task?requester=...`, `Task?owner=...`) or of a combined key, sorted by
`_lastUpdated` or in the default order, then reads its first page off the index in order
(`exchange.fhir.search_sql.plan_search`), instead of finding every resource the organisation ever sent or received
and sorting them all. The write path sets the column on every index row it writes (every write rewrites a
resource's rows); this migration sets it for the rows stored before, and replaces ix_search_value
(resource_type, param, value) by ix_search_value_updated (resource_type, param, value, last_updated), which serves
every search the old one did (the same leading columns).

Revision ID: 0900_index_updated
Revises: 0800_owner_status, 0700_directory_capacity
"""
import sqlalchemy as sa
from alembic import op

revision = "0900_index_updated"
# A merge of both: 0700_directory_capacity writes index rows too, so it runs first and its rows get the column.
# (As a dependency instead, alembic records only this revision, and 0700_directory_capacity would still be listed
# as a head of the scripts: the readiness check would never see the schema as current.)
down_revision = ("0800_owner_status", "0700_directory_capacity")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("search_index", sa.Column("last_updated", sa.DateTime(timezone=False), nullable=True))
    backfill()
    op.create_index("ix_search_value_updated", "search_index", ["resource_type", "param", "value", "last_updated"])
    op.drop_index("ix_search_value", table_name="search_index")


def backfill() -> None:
    """Each index row takes its resource's last_updated (the rows of a deleted resource are gone with it)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE search_index s SET last_updated = r.last_updated FROM resource r "
                   "WHERE r.resource_type = s.resource_type AND r.id = s.resource_id")
    else:
        op.execute("UPDATE search_index SET last_updated = (SELECT r.last_updated FROM resource r "
                   "WHERE r.resource_type = search_index.resource_type AND r.id = search_index.resource_id)")


def downgrade() -> None:
    op.create_index("ix_search_value", "search_index", ["resource_type", "param", "value"])
    op.drop_index("ix_search_value_updated", table_name="search_index")
    with op.batch_alter_table("search_index") as batch:
        batch.drop_column("last_updated")
