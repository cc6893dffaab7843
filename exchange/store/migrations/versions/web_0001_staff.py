"""Web inbox: staff accounts, server-side sessions, pending alert e-mails.

Revision ID: web_0001
Revises: 0002_exchange_key
"""
from alembic import op
import sqlalchemy as sa

revision = "web_0001"
down_revision = "0002_exchange_key"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "web_staff",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("totp_secret", sa.String(64), nullable=False),
        sa.Column("totp_last_step", sa.BigInteger),
        sa.Column("locale", sa.String(8)),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=False)),
        sa.Column("created", sa.DateTime(timezone=False), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=False), nullable=False),
    )
    op.create_index("ix_web_staff_org", "web_staff", ["organization_id"])
    op.create_table(
        "web_session",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("staff_id", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=False), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=False), nullable=False),
    )
    op.create_index("ix_web_session_staff", "web_session", ["staff_id"])
    op.create_table(
        "web_alert",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created", sa.DateTime(timezone=False), nullable=False),
        sa.Column("sent", sa.DateTime(timezone=False)),
        sa.Column("attempts", sa.Integer, nullable=False),
    )
    op.create_index("ix_web_alert_pending", "web_alert", ["sent", "id"])


def downgrade() -> None:
    op.drop_table("web_alert")
    op.drop_table("web_session")
    op.drop_table("web_staff")
