"""The exchange log's records are insert-only: the chain positions and the queue move to narrow tables (issue 12).

Until now the linker UPDATEd each record's seq, hash and linked in audit_event. seq is indexed, so that UPDATE was
never HOT: PostgreSQL wrote a new copy of the whole record (about 2 KB) and a new entry in each of its nine indexes,
and left a dead tuple for vacuum, for every record. Now a request inserts its record into audit_event and its entry
into audit_queue; the linker inserts the record's chain position into audit_chain (entry, seq, hash, linked),
deletes its queue row and advances audit_head. (SQLite: a trigger queues each record as it is inserted.) Existing
records move: the linked ones' positions into audit_chain, the queued ones' entries into audit_queue; then seq, hash
and linked leave audit_event, and with them its unique seq index and the partial ix_audit_unlinked (seq IS NULL).

Revision ID: 1200_audit_chain_rows
Revises: 1100_search_index_lean
"""
from alembic import op
import sqlalchemy as sa

revision = "1200_audit_chain_rows"
down_revision = "1100_search_index_lean"
branch_labels = None
depends_on = None

ENTRY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
QUEUE_TRIGGER = ("CREATE TRIGGER audit_event_queued AFTER INSERT ON audit_event "
                 "BEGIN INSERT INTO audit_queue (entry) VALUES (NEW.entry); END")


def upgrade() -> None:
    op.create_table(
        "audit_chain",
        sa.Column("entry", ENTRY, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False, unique=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("linked", sa.DateTime(timezone=False), nullable=False),
    )
    op.create_table("audit_queue", sa.Column("entry", ENTRY, primary_key=True, autoincrement=False))
    op.execute("INSERT INTO audit_chain (entry, seq, hash, linked) "
               "SELECT entry, seq, hash, COALESCE(linked, recorded) FROM audit_event WHERE seq IS NOT NULL")
    op.execute("INSERT INTO audit_queue (entry) SELECT entry FROM audit_event WHERE seq IS NULL")
    op.drop_index("ix_audit_unlinked", table_name="audit_event")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_event DROP COLUMN seq, DROP COLUMN hash, DROP COLUMN linked")
    else:  # SQLite: the table is rebuilt without them (its unique seq constraint goes with it), and queues its
        # records itself
        with op.batch_alter_table("audit_event", recreate="always") as batch:
            batch.drop_column("seq")
            batch.drop_column("hash")
            batch.drop_column("linked")
        op.execute(QUEUE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TRIGGER audit_event_queued")
    with op.batch_alter_table("audit_event") as batch:
        batch.add_column(sa.Column("seq", sa.Integer, nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("linked", sa.DateTime(timezone=False), nullable=True))
    op.execute("UPDATE audit_event SET seq = (SELECT c.seq FROM audit_chain AS c WHERE c.entry = audit_event.entry), "
               "hash = (SELECT c.hash FROM audit_chain AS c WHERE c.entry = audit_event.entry), "
               "linked = (SELECT c.linked FROM audit_chain AS c WHERE c.entry = audit_event.entry)")
    with op.batch_alter_table("audit_event") as batch:
        batch.create_unique_constraint("uq_audit_event_seq", ["seq"])
    op.create_index("ix_audit_unlinked", "audit_event", ["entry"], postgresql_where=sa.text("seq IS NULL"),
                    sqlite_where=sa.text("seq IS NULL"))
    op.drop_table("audit_queue")
    op.drop_table("audit_chain")
