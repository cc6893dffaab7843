"""search_index loses its row_id serial, and its date index holds only the rows with a date (issue 12).

Every write of a resource deletes its index rows and inserts them again, so what each row costs PostgreSQL to
insert is paid about 55 times a referral lifecycle. Nothing reads row_id (rows are found by resource, by value or
by date), yet each row cost a nextval and an entry in the primary key's index; without it the table has no key, as
a resource's rows need none (they go and come by (resource_type, resource_id)). ix_search_date held every row,
though only date parameters' rows (about one in seven) have a date: it now holds those alone, and every date
condition says `date_start IS NOT NULL` (`exchange.fhir.search_sql`), which such a row always has, so the
planner may use the partial index.

Revision ID: 1100_search_index_lean
Revises: 1000_value_index_covers
"""
import sqlalchemy as sa
from alembic import op

revision = "1100_search_index_lean"
down_revision = "1000_value_index_covers"
branch_labels = None
depends_on = None

DATE_COLUMNS = ["resource_type", "param", "date_start"]
HAS_DATE = sa.text("date_start IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_search_date", table_name="search_index")
    with op.batch_alter_table("search_index") as batch:  # (SQLite: the table made again without the column)
        batch.drop_column("row_id")
    op.create_index("ix_search_date", "search_index", DATE_COLUMNS, postgresql_where=HAS_DATE, sqlite_where=HAS_DATE)


def downgrade() -> None:
    op.drop_index("ix_search_date", table_name="search_index")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE search_index ADD COLUMN row_id serial PRIMARY KEY")
    else:  # (an INTEGER PRIMARY KEY is SQLite's rowid: the rows keep theirs)
        op.execute("ALTER TABLE search_index RENAME TO search_index_lean")
        op.execute("CREATE TABLE search_index (row_id INTEGER NOT NULL PRIMARY KEY, "
                   "resource_type VARCHAR(64) NOT NULL, resource_id VARCHAR(64) NOT NULL, param VARCHAR(64) NOT NULL, "
                   "system VARCHAR(255), value VARCHAR(255), text TEXT, date_start DATETIME, date_end DATETIME, "
                   "last_updated DATETIME)")
        columns = "resource_type, resource_id, param, system, value, text, date_start, date_end, last_updated"
        op.execute(f"INSERT INTO search_index ({columns}) SELECT {columns} FROM search_index_lean")
        op.execute("DROP TABLE search_index_lean")  # (its indexes with it)
        op.create_index("ix_search_value_updated", "search_index",
                        ["resource_type", "param", "value", "last_updated", "system", "resource_id"])
        op.create_index("ix_search_resource", "search_index", ["resource_type", "resource_id"])
    op.create_index("ix_search_date", "search_index", DATE_COLUMNS)
