"""Key custody: the exchange's private keys sealed under the operator's key-encryption key; retired keys.

Revision ID: 0003_key_custody
Revises: 0002_exchange_key

A key written before this revision keeps its clear `private_jwk` only until the first process with the KEK loads
it (exchange.keys.KeyStore seals it and sets the column to NULL): the migration itself never sees the KEK.
"""
from alembic import op
import sqlalchemy as sa

revision = "0003_key_custody"
down_revision = "0002_exchange_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exchange_key") as batch:
        batch.alter_column("private_jwk", existing_type=sa.Text, nullable=True)
        batch.add_column(sa.Column("sealed_jwk", sa.Text, nullable=True))
        batch.add_column(sa.Column("public_jwk", sa.Text, nullable=True))
        batch.add_column(sa.Column("retired", sa.DateTime(timezone=False), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("sealed keys cannot be put back in the clear by a migration")
