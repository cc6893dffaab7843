"""The parameters of a statistics request, checked: bad input is a 400 OperationOutcome naming the parameter and
the rule, never the value sent.

`by` chooses the breakdown (month, service-type, area, priority, organization); `start` and `end` the period of the
time referrals were sent, in whole calendar months (YYYY-MM, or the first and the last day of a month as YYYY-MM-DD),
both included; the default is the twelve calendar months up to and including the current one (UTC).

Whole months only: two periods that differ by a few days could be subtracted, cell by cell, to reveal the small
counts that each report suppresses (a differencing attack); a month is the smallest unit one can take away.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Sequence

from exchange.errors import BadRequest
from exchange.stats.aggregate import BREAKDOWNS

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
DEFAULT_MONTHS = 12


@dataclass(frozen=True)
class StatsQuery:
    breakdown: str
    start: datetime  # aware UTC, included
    end: datetime  # aware UTC, excluded (the day after the last day)

    @property
    def last_day(self) -> date:
        from datetime import timedelta

        return (self.end - timedelta(days=1)).date()

    def as_pairs(self) -> list[tuple[str, str]]:
        """The parameters as used, for the exchange log (codes and dates only)."""
        return [("by", self.breakdown), ("start", self.start.date().isoformat()),
                ("end", self.last_day.isoformat())]


def _first_of_next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def _parse(name: str, raw: str, is_end: bool) -> date:
    m = _MONTH.match(raw)
    try:
        if m:
            first = date(int(m.group(1)), int(m.group(2)), 1)
            return _first_of_next_month(first) if is_end else first
        d = _DAY.match(raw)
        if d:
            day = date(int(d.group(1)), int(d.group(2)), int(d.group(3)))
            after = date.fromordinal(day.toordinal() + 1)
            if (after.day == 1) if is_end else (day.day == 1):
                return after if is_end else day
            raise BadRequest(f"{name} must be the {'last' if is_end else 'first'} day of a month: statistics cover "
                             "whole calendar months (so that two periods cannot be subtracted to reveal a small "
                             "count)", expression=name, code="value")
    except ValueError:
        pass
    raise BadRequest(f"{name} must be a month (YYYY-MM) or a date (YYYY-MM-DD)", expression=name, code="value")


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def parse(pairs: Sequence[tuple[str, str]], now: datetime, names: dict[str, str] | None = None,
          ignored: frozenset[str] = frozenset()) -> StatsQuery:
    """`names` renames the parameters (the FHIR operation calls start and end periodStart and periodEnd)."""
    names = names or {"by": "by", "start": "start", "end": "end"}  # the FHIR operation: no by, and reportType
    known = {v: k for k, v in names.items()}
    values: dict[str, str] = {}
    for position, (key, value) in enumerate(pairs, start=1):
        if key in ignored:
            continue
        if key not in known:  # named by its position only: its name is the caller's text
            raise BadRequest(f"Parameter {position} is not a parameter of the statistics (they take "
                             f"{', '.join(names.values())})", code="not-supported")
        if known[key] in values:
            raise BadRequest(f"{key} may be given once", expression=key)
        values[known[key]] = value
    breakdown = values.get("by", "month")
    if breakdown not in BREAKDOWNS:
        raise BadRequest(f"{names['by']} must be one of {', '.join(BREAKDOWNS)}", expression=names["by"],
                         code="value")
    report_type = values.get("reportType", "population")
    if report_type != "population":  # the FHIR operation's: a summary of all referrals, never one subject's
        raise BadRequest("reportType must be population (statistics never report on one subject)",
                         expression="reportType", code="not-supported")
    today = now.astimezone(timezone.utc).date()
    end = _parse(names["end"], values["end"], True) if "end" in values else _first_of_next_month(today)
    if "start" in values:
        start = _parse(names["start"], values["start"], False)
    else:
        months = end.year * 12 + end.month - 1 - DEFAULT_MONTHS
        start = date(months // 12, months % 12 + 1, 1)
    if start >= end:
        raise BadRequest(f"{names['start']} must not be after {names['end']}", expression=names["start"],
                         code="value")
    return StatsQuery(breakdown, _at(start), _at(end))
