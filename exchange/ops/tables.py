"""The operations package's own table: the rate limits' fixed windows on PostgreSQL (`ops/ratelimit.py`; unlogged,
migration 0004)."""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from exchange.store.tables import metadata

rate_limit_window = Table(
    "rate_limit_window", metadata,
    Column("key", String(200), primary_key=True),
    Column("window_start", BigInteger, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
)
