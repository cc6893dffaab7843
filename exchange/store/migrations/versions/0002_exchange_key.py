"""The exchange's own signing keys.

Revision ID: 0002_exchange_key
Revises: 0001_core
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_exchange_key"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_key",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("private_jwk", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime(timezone=False), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("exchange_key")
