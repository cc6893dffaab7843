"""FHIR date, dateTime and instant values as half-open UTC ranges [start, end), following their precision."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
                   r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")


def _add_months(dt: datetime, months: int) -> datetime:
    month = dt.month - 1 + months
    return dt.replace(year=dt.year + month // 12, month=month % 12 + 1)


def parse_fhir_date(value: str) -> tuple[datetime, datetime]:
    """The range a FHIR date/dateTime/instant covers. Values without a zone are taken as UTC."""
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
        return start, start.replace(year=start.year + 1)
    if day is None:
        start = datetime(int(year), int(month), 1, tzinfo=tz)
        return start, _add_months(start, 1)
    if hour is None:
        start = datetime(int(year), int(month), int(day), tzinfo=tz)
        return start, start + timedelta(days=1)
    if second is None:
        start = datetime(int(year), int(month), int(day), int(hour), int(minute), tzinfo=tz)
        return start.astimezone(timezone.utc), (start + timedelta(minutes=1)).astimezone(timezone.utc)
    micro = int(round(float(fraction) * 1_000_000)) if fraction else 0
    start = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)
    step = timedelta(microseconds=1) if fraction else timedelta(seconds=1)
    return start.astimezone(timezone.utc), (start + step).astimezone(timezone.utc)
