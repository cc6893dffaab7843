"""Core FHIR store: resources, versions, search index, access parties, condition locks.

Revision ID: 0001_core
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=False), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "id"),
    )
    op.create_index("ix_resource_type_updated", "resource", ["resource_type", "last_updated", "id"])
    op.create_table(
        "resource_version",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=False), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "id", "version_id"),
    )
    op.create_table(
        "search_index",
        sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("system", sa.String(255)),
        sa.Column("value", sa.String(255)),
        sa.Column("text", sa.Text),
        sa.Column("date_start", sa.DateTime(timezone=False)),
        sa.Column("date_end", sa.DateTime(timezone=False)),
    )
    op.create_index("ix_search_value", "search_index", ["resource_type", "param", "value"])
    op.create_index("ix_search_resource", "search_index", ["resource_type", "resource_id"])
    op.create_index("ix_search_date", "search_index", ["resource_type", "param", "date_start"])
    op.create_table(
        "resource_party",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "resource_id", "organization_id"),
    )
    op.create_index("ix_party_org", "resource_party", ["organization_id", "resource_type"])
    op.create_table(
        "condition_lock",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("condition", sa.String(128), nullable=False),
        sa.Column("counter", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "condition"),
    )


def downgrade() -> None:
    for name in ("condition_lock", "resource_party", "search_index", "resource_version", "resource"):
        op.drop_table(name)
