"""The audit tables: the chained log, its entity index, the chain head, and signed checkpoints.

`audit_event.content` holds the AuditEvent in canonical JSON exactly as it was hashed; the other columns are
search keys derived from it (`exchange audit verify` checks they still agree with the content).

A record is appended in two steps (as a transparency log queues entries and integrates them later): the request's
own transaction inserts it into `audit_event` with its `entry` number (a database sequence: no lock shared between
requests) and its `entry` into `audit_queue`; the linker (`exchange.audit.linker`) then takes the queue in entry
order and inserts each record's chain position into `audit_chain` (`seq` 1, 2, 3 ... without gaps, its `hash`, the
time it was `linked`), deletes its queue rows and advances `audit_head`. No row of `audit_event` is ever updated:
an UPDATE of the wide, many-indexed record (as the chain columns in it cost until migration 1200) writes a whole
new copy of it and of every index entry, where the linker's rows are narrow.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Table, Text, literal_column

from exchange.store.tables import metadata

ENTRY_TYPE = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY, its rowid

audit_event = Table(
    "audit_event", metadata,
    Column("entry", ENTRY_TYPE, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("recorded", DateTime(timezone=False), nullable=False),
    Column("subtype", String(32), nullable=False),
    Column("action", String(1), nullable=False),
    Column("outcome", String(2), nullable=False),
    Column("client_id", String(128)),
    Column("organization_id", String(64)),
    Column("entity_type", String(64)),  # the first resource the event is about (most events have just one)
    Column("entity_id", String(64)),
    Column("content", Text, nullable=False),
    # The events in the order AuditEvent searches give them, by time and then log entry (migration 1302), all of
    # them and an agent's: a page of a period, of an agent, or of an agent's period is a range of one index read in
    # its order, wherever the period lies in the log (`exchange.audit.review`). The time index serves the
    # export's and the emergency report's periods too.
    Index("ix_audit_time", "recorded", "entry"),
    Index("ix_audit_org_time", "organization_id", "recorded", "entry"),
    Index("ix_audit_client_time", "client_id", "recorded", "entry"),
    Index("ix_audit_event_entity", "entity_type", "entity_id"),
)

# Records of the rare kinds auditors look for, each kind with an index of its own (migration 1303): failed
# interactions (outcome 4, 8, 12) and uses of the emergency exception. Walking the time index for them would read the
# log from its end until a page of them was found; their partial index holds only them. (index, column, values)
RARE_KINDS = (("ix_audit_failed", "outcome", ("4", "8", "12")),
              ("ix_audit_emergency", "subtype", ("emergency-exception",)))
for _name, _column, _values in RARE_KINDS:
    Index(_name, audit_event.c.recorded, audit_event.c.entry, postgresql_where=audit_event.c[_column].in_(_values),
          sqlite_where=audit_event.c[_column].in_(_values))


def rare_kind_literal(column: str, value: str):  # noqa: ANN201
    """`value` of `column` as an SQL literal if a rare kind's index names it (so that a plan PostgreSQL makes for a
    prepared statement, a generic one too, can prove the index applies: a bind parameter it cannot), else None.
    Only the kinds' own values are ever written into SQL so: never a caller's text."""
    for _index, kind_column, values in RARE_KINDS:
        if kind_column == column and value in values:
            return literal_column(f"'{values[values.index(value)]}'")
    return None


# The chain: each linked record's position, hash and when it was linked (only the linker writes it). A record of
# audit_event without a row here is queued (its entry is in audit_queue) until the linker's pass.
audit_chain = Table(
    "audit_chain", metadata,
    Column("entry", ENTRY_TYPE, primary_key=True, autoincrement=False),  # audit_event.entry
    Column("seq", Integer, nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
    Column("linked", DateTime(timezone=False), nullable=False),
)

# The records committed and not yet linked, by entry: the request's statement that inserts its records inserts
# their entries here too (`exchange.audit.hook`; SQLite: the trigger audit_event_queued of migration 1200), the
# linker reads them in this key's order and deletes them as it links them.
audit_queue = Table(
    "audit_queue", metadata,
    Column("entry", ENTRY_TYPE, primary_key=True, autoincrement=False),  # audit_event.entry
)

# The further resources an AuditEvent is about (entity.what after the first, e.g. what a search returned), for
# `entity=` searches and the partner filter. The first one is in audit_event itself: one INSERT per event.
audit_entity = Table(
    "audit_entity", metadata,
    Column("event_id", String(64), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Index("ix_audit_entity_resource", "resource_type", "resource_id"),
    Index("ix_audit_entity_event", "event_id"),
)

# One row: the newest linked sequence number and hash. Only the linker writes it (one pass at a time).
audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_checkpoint = Table(
    "audit_checkpoint", metadata,
    Column("tree_size", Integer, primary_key=True, autoincrement=False),
    Column("head_hash", String(64), nullable=False),
    Column("created", DateTime(timezone=False), nullable=False),
    Column("jws", Text, nullable=False),
)
