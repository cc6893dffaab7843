"""auth_client.pending_by: a client registered or re-keyed over HTTP waits for a second admin or the CLI.

Revision ID: 0101_auth_confirmation
Revises: 0100_auth
"""
from alembic import op
import sqlalchemy as sa

revision = "0101_auth_confirmation"
down_revision = "0100_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("auth_client", sa.Column("pending_by", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("auth_client", "pending_by")
