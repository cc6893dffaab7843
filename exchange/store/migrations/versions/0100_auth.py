"""OAuth 2 clients, used client-assertion ids, revoked access tokens.

Revision ID: 0100_auth
Revises: 0002_exchange_key
"""
from alembic import op
import sqlalchemy as sa

revision = "0100_auth"
down_revision = "0002_exchange_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_client",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("jwks", sa.Text),
        sa.Column("jwks_url", sa.Text),
        sa.Column("label", sa.String(200)),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created", sa.DateTime(timezone=False), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=False), nullable=False),
    )
    op.create_index("ix_auth_client_org", "auth_client", ["organization_id"])
    op.create_table(
        "auth_used_jti",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("jti", sa.String(255), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=False), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti"),
    )
    op.create_index("ix_auth_used_jti_expires", "auth_used_jti", ["expires"])
    op.create_table(
        "auth_revoked_token",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=False), nullable=False),
    )
    op.create_index("ix_auth_revoked_expires", "auth_revoked_token", ["expires"])


def downgrade() -> None:
    op.drop_table("auth_revoked_token")
    op.drop_table("auth_used_jti")
    op.drop_table("auth_client")
