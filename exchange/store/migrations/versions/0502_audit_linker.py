"""The exchange log without a global lock: records are queued with an entry number and linked into the chain later.

`entry` (a database sequence) orders the queue and becomes the key; `seq` and `hash` stay empty until the linker
gives the record its chain position; `linked` says when. Existing records keep their position (entry = seq) and
count as linked when they were recorded.

Revision ID: 0502_audit_linker
Revises: 0501_audit_entity
"""
from alembic import op
import sqlalchemy as sa

revision = "0502_audit_linker"
down_revision = "0501_audit_entity"
branch_labels = None
depends_on = None

COLUMNS = "id, recorded, subtype, action, outcome, client_id, organization_id, entity_type, entity_id, content"
ENTRY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_event_queued",
        sa.Column("entry", ENTRY, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.Integer, nullable=True, unique=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("recorded", sa.DateTime(timezone=False), nullable=False),
        sa.Column("subtype", sa.String(32), nullable=False),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("client_id", sa.String(128)),
        sa.Column("organization_id", sa.String(64)),
        sa.Column("entity_type", sa.String(64)),
        sa.Column("entity_id", sa.String(64)),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=True),
        sa.Column("linked", sa.DateTime(timezone=False), nullable=True),
    )
    op.execute(f"INSERT INTO audit_event_queued (entry, seq, {COLUMNS}, hash, linked) "
               f"SELECT seq, seq, {COLUMNS}, hash, recorded FROM audit_event")
    op.drop_table("audit_event")
    op.rename_table("audit_event_queued", "audit_event")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER SEQUENCE audit_event_queued_entry_seq RENAME TO audit_event_entry_seq")
        op.execute("SELECT setval('audit_event_entry_seq', (SELECT COALESCE(MAX(entry), 0) + 1 FROM audit_event), "
                   "false)")
    op.create_index("ix_audit_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_org", "audit_event", ["organization_id", "recorded"])
    op.create_index("ix_audit_client", "audit_event", ["client_id", "recorded"])
    op.create_index("ix_audit_event_entity", "audit_event", ["entity_type", "entity_id"])
    op.create_index("ix_audit_unlinked", "audit_event", ["entry"], postgresql_where=sa.text("seq IS NULL"),
                    sqlite_where=sa.text("seq IS NULL"))


def downgrade() -> None:
    raise NotImplementedError("the queued log cannot be folded back into one locked chain; restore a backup")
