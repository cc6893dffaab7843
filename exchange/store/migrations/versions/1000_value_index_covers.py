"""The value index holds each row's system and resource id after the value and time (issue 12).

An inbox (`Task?owner=...`) finds its matches by the index rows of one value (`exchange.fhir.search_sql`): the page
joins them to their resources, and the count of a full page (`Bundle.total`) counts the rows themselves, each with
the caller's party row. With the system (the reference's target type, compared) and the resource id (joined on) in
the index, neither reads the index's table: the count reads no row of search_index and none of resource, only the
index and the party rows, so a count of thousands of matches reads a few pages of the index where it read a table
page a match. ix_search_value_updated keeps its leading columns (resource_type, param, value, last_updated), so
every search it served it still serves, in the same order.

Revision ID: 1000_value_index_covers
Revises: 0900_index_updated
"""
from alembic import op

revision = "1000_value_index_covers"
down_revision = "0900_index_updated"
branch_labels = None
depends_on = None

COLUMNS = ["resource_type", "param", "value", "last_updated", "system", "resource_id"]


def upgrade() -> None:
    _rebuild(COLUMNS)


def downgrade() -> None:
    _rebuild(COLUMNS[:4])


def _rebuild(columns: list[str]) -> None:
    """The index again with `columns` (in the migration's transaction on PostgreSQL: no moment without it)."""
    op.drop_index("ix_search_value_updated", table_name="search_index")
    op.create_index("ix_search_value_updated", "search_index", columns)
