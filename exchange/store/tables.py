"""The core tables: resource versions, the current version, search-index rows, access parties, condition locks.

Other packages (auth, audit, notify) declare their own tables on the same `metadata`; Alembic migrations in
`exchange/store/migrations` create them all.
"""
from __future__ import annotations

from sqlalchemy import (Boolean, Column, DateTime, Index, Integer, MetaData, String, Table, Text,
                        PrimaryKeyConstraint, text)

metadata = MetaData()

# The current version of every resource (deleted ones keep a row with deleted=true).
resource = Table(
    "resource", metadata,
    Column("resource_type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=False), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", Text, nullable=False),
    PrimaryKeyConstraint("resource_type", "id"),
    Index("ix_resource_type_updated", "resource_type", "last_updated", "id"),
)

# Every version, kept whole as received and validated (plus server-set id and meta).
resource_version = Table(
    "resource_version", metadata,
    Column("resource_type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=False), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("method", String(8), nullable=False),
    Column("content", Text, nullable=False),
    PrimaryKeyConstraint("resource_type", "id", "version_id"),
)

# Search-index rows of the current version. token: system+value; reference: system=target type, value=target id;
# string: value=normalised, text=as written; date: date_start <= t < date_end. last_updated: the resource's, as in
# its `resource` row (every write rewrites a resource's rows), so that a search on one value finds its first page in
# `_lastUpdated` order off ix_search_value_updated (`exchange.fhir.search_sql.plan_search`). No key: a resource's
# rows go and come by (resource_type, resource_id), and each row written costs what each index costs (migration 1200).
search_index = Table(
    "search_index", metadata,
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("param", String(64), nullable=False),
    Column("system", String(255)),
    Column("value", String(255)),
    Column("text", Text),
    Column("date_start", DateTime(timezone=False)),
    Column("date_end", DateTime(timezone=False)),
    Column("last_updated", DateTime(timezone=False)),
    # (system and resource id after the time: a search driven by one value reads neither from the table, migration
    # 1000; its count reads the index and the party rows alone)
    Index("ix_search_value_updated", "resource_type", "param", "value", "last_updated", "system", "resource_id"),
    Index("ix_search_resource", "resource_type", "resource_id"),
    # (the date parameters' rows alone, about one in seven: every date condition says date_start IS NOT NULL)
    Index("ix_search_date", "resource_type", "param", "date_start", postgresql_where=text("date_start IS NOT NULL"),
          sqlite_where=text("date_start IS NOT NULL")),
)

# The organisations that may see a resource (need to know). Access rules filter queries on this table.
resource_party = Table(
    "resource_party", metadata,
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("organization_id", String(64), nullable=False),
    PrimaryKeyConstraint("resource_type", "resource_id", "organization_id"),
    Index("ix_party_org", "organization_id", "resource_type"),
)

# One row per (type, normalised If-None-Exist query): the upsert of this row serialises concurrent conditional
# creates of the same condition, so exactly one of them creates.
condition_lock = Table(
    "condition_lock", metadata,
    Column("resource_type", String(64), nullable=False),
    Column("condition", String(128), nullable=False),
    Column("counter", Integer, nullable=False, default=0),
    PrimaryKeyConstraint("resource_type", "condition"),
)

# The organisation that created each referral resource (its recorder): only it may change or delete the survivor's
# Patient, Consent and documents (`exchange.referral.authority`). Resources the exchange itself created have no row.
resource_recorder = Table(
    "resource_recorder", metadata,
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("organization_id", String(64), nullable=False),
    PrimaryKeyConstraint("resource_type", "resource_id"),
)
