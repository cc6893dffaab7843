"""The store's clock: what time it is, how a moment is kept in a column, and how it is written in FHIR.

Every stored moment is naive UTC in its column (the same on SQLite and PostgreSQL) and timezone-aware in Python.
Tests move the exchange's time by replacing `utcnow` here, so code that must follow that clock calls
`clock.utcnow()` through the module."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone


TICK = timedelta(microseconds=1)  # the smallest step between two versions of one resource


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_db(dt: datetime) -> datetime:
    """Store datetimes as naive UTC: the same on SQLite and PostgreSQL."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def from_db(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt


def fhir_instant(dt: datetime) -> str:
    return from_db(dt).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def after(previous: datetime, now: datetime) -> datetime:
    """`now`, or a tick after `previous` if `now` is not later: a new version is always later than the last."""
    return now if now > previous else previous + TICK
