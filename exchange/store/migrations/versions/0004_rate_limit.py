"""Rate-limit windows shared by the processes of a PostgreSQL deployment (exchange.ops.ratelimit).

Revision ID: 0004_rate_limit
Revises: 0003_key_custody

UNLOGGED on PostgreSQL: the counts are worth nothing after a crash, so they cost no WAL.
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_rate_limit"
down_revision = "0003_key_custody"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_window",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("window_start", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE rate_limit_window SET UNLOGGED")


def downgrade() -> None:
    op.drop_table("rate_limit_window")
