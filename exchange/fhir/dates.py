"""FHIR date, dateTime and instant values as half-open UTC ranges [start, end), following their precision.

Ranges are clamped to what datetime (and both databases) hold: 9999-12-31 ends at EARLIEST/LATEST instead of
overflowing, so a legal date at either end of the calendar is stored, indexed and searched like any other.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
                   r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")


EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
LATEST = datetime.max.replace(tzinfo=timezone.utc)


def _add_months(dt: datetime, months: int) -> datetime:
    month = dt.month - 1 + months
    if dt.year + month // 12 > 9999:
        return LATEST
    return dt.replace(year=dt.year + month // 12, month=month % 12 + 1)


def _plus(dt: datetime, step: timedelta) -> datetime:
    try:
        return dt + step
    except OverflowError:
        return LATEST


def _utc(dt: datetime) -> datetime:
    try:
        return dt.astimezone(timezone.utc)
    except OverflowError:
        return EARLIEST if dt.year == 1 else LATEST


def parse_fhir_date(value: str) -> tuple[datetime, datetime]:
    """The range a FHIR date/dateTime/instant covers. Values without a zone are taken as UTC."""
    start, end = _parse(value)
    return _utc(start), _utc(end)


def instant_or_none(value: object, end: bool = False) -> datetime | None:
    """A stored FHIR date or dateTime as its first (or, with `end`, last) instant; None when it is not one (what the
    exchange reads back from stored bodies, where a missing or odd value means 'not set', never an error)."""
    if not isinstance(value, str):
        return None
    try:
        low, high = parse_fhir_date(value)
    except ValueError:
        return None
    return high if end else low


def _parse(value: str) -> tuple[datetime, datetime]:
    m = _DATE.match(value.strip())
    if not m:
        raise ValueError(f"'{value}' is not a FHIR date, dateTime or instant")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    tz = timezone.utc
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    if month is None:
        start = datetime(int(year), 1, 1, tzinfo=tz)
        return start, _add_months(start, 12)
    if day is None:
        start = datetime(int(year), int(month), 1, tzinfo=tz)
        return start, _add_months(start, 1)
    if hour is None:
        start = datetime(int(year), int(month), int(day), tzinfo=tz)
        return start, _plus(start, timedelta(days=1))
    if second is None:
        start = datetime(int(year), int(month), int(day), int(hour), int(minute), tzinfo=tz)
        return start, _plus(start, timedelta(minutes=1))
    micro = int(round(float(fraction) * 1_000_000)) if fraction else 0
    start = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)
    step = timedelta(microseconds=1) if fraction else timedelta(seconds=1)
    return start, _plus(start, step)
