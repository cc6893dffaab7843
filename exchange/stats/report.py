"""A statistics report: the counts of every breakdown of one period, suppressed together, with rates, medians and
reasons derived only from what stays shown.

Every breakdown (month, service type, area, priority, organisation) partitions the same referrals, and they share
the total row, so they are suppressed as ONE system of cells and constraints (`exchange.stats.suppression`): a
reader who asks for two breakdowns cannot take a total hidden in one from the other. The reasons tables hang off
the same cells (the declined referrals of a month are the sum of its decline reasons). A rate is shown only when
every count it is computed from is shown; a median only when at least `threshold` referrals make it.
Organisations that received fewer referrals in the period than the deployment's size are not named: they are
reported together as "other organisations".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.referral import codes
from exchange.stats import aggregate, facts
from exchange.stats.params import StatsQuery
from exchange.stats.suppression import SHOWN, Constraint, label, suppress
from exchange.store.tables import resource

TOTAL = None
OTHER_ORGS = "other"
REFERRALS, CANCELLED, DUE, LATE, ON_TIME = "referrals", "cancelled", "deadline-passed", "no-answer-by-deadline", \
    "answered-by-deadline"
MEASURES = (REFERRALS, *facts.OUTCOMES, CANCELLED, DUE, LATE, ON_TIME)
REASON_WHOLE = {facts.DECLINED: facts.DECLINED, facts.FAILED: facts.FAILED, "cancelled": CANCELLED}
UNKNOWN_LABEL = {"month": "", "service-type": "not recorded", "area": "not recorded", "priority": "not recorded",
                 "organization": "not yet claimed"}


@dataclass
class Row:
    category: str | None  # None: the total
    label: str
    cells: dict[str, int | str]  # measure -> count, "<5" or "suppressed"
    acceptance_rate: float | None = None
    no_answer_share: float | None = None
    median_hours: dict[str, float | None] = field(default_factory=dict)

    def as_json(self) -> dict:
        out = {"category": self.category, "label": self.label, **self.cells,
               "acceptance_rate": self.acceptance_rate, "no_answer_by_deadline_share": self.no_answer_share,
               "median_hours": self.median_hours}
        if self.category is None:
            out.pop("category")
        return out


@dataclass
class ReasonRow:
    kind: str  # declined | failed | cancelled
    code: str  # system|code, "other" or ""
    label: str
    total: int | str
    by: dict[str, int | str]

    def as_json(self) -> dict:
        return {"code": self.code, "label": self.label, "total": self.total, "by": self.by}


@dataclass
class Table:
    breakdown: str
    rows: list[Row]
    total: Row
    reasons: dict[str, list[ReasonRow]]

    def as_json(self) -> dict:
        return {"breakdown": self.breakdown, "rows": [r.as_json() for r in self.rows],
                "total": self.total.as_json(),
                "reasons": {k: [r.as_json() for r in v] for k, v in self.reasons.items()}}


@dataclass
class Report:
    query: StatsQuery
    generated: datetime
    threshold: int
    behind: int
    tables: dict[str, Table]

    def as_json(self, breakdown: str | None = None) -> dict:
        from exchange.store.clock import fhir_instant

        table = self.tables[breakdown or self.query.breakdown]
        return {"period": {"start": self.query.start.date().isoformat(), "end": self.query.last_day.isoformat()},
                "generated": fhir_instant(self.generated), "threshold": self.threshold,
                "small_cells": f"<{self.threshold}", "complete": self.behind == 0, **table.as_json()}


def _reason_label(code: str) -> str:
    """The English display of a reason code (its code when the CodeSystem has none)."""
    if code == facts.OTHER_REASON:
        return "other (not a published code)"
    if not code:
        return "no reason given"
    system, _, value = code.partition("|")
    return codes.display(system, value) or value


async def _names(conn: AsyncConnection, resource_type: str, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = (await conn.execute(select(resource.c.id, resource.c.content).where(
        resource.c.resource_type == resource_type, resource.c.id.in_(sorted(ids)), resource.c.deleted.is_(False))
    )).all()
    return {r.id: str(orjson.loads(r.content).get("name") or r.id) for r in rows}


def _months(query: StatsQuery) -> list[str]:
    out, day = [], query.start.date().replace(day=1)
    while day < query.end.date():
        out.append(day.strftime("%Y-%m"))
        day = (day + timedelta(days=32)).replace(day=1)
    return out


def _pool(by_org: dict[str, aggregate.Counts], reasons: dict, minimum: int
          ) -> tuple[dict[str, aggregate.Counts], dict, dict[str, str]]:
    """Organisations below `minimum` referrals reported together; returns the pooled counts and reasons and
    {organisation: "other"} for those pooled."""
    pooled = {org: OTHER_ORGS for org, c in by_org.items() if org and c.referrals < minimum}
    if not pooled:
        return by_org, reasons, {}
    counts: dict[str, aggregate.Counts] = {}
    for org, c in by_org.items():
        counts.setdefault(pooled.get(org, org), aggregate.Counts()).add(c)
    merged: dict = {}
    for (kind, org, reason), n in reasons.items():
        key = (kind, pooled.get(org, org), reason)
        merged[key] = merged.get(key, 0) + n
    return counts, merged, pooled


def _cells(counts: aggregate.Counts) -> dict[str, int]:
    o = counts.outcomes
    return {REFERRALS: counts.referrals, **o, CANCELLED: o[facts.CANCELLED_BEFORE] + o[facts.CANCELLED_AFTER],
            DUE: counts.due, LATE: counts.late, ON_TIME: counts.due - counts.late}


def _row_constraints(prefix: tuple) -> list[Constraint]:
    k = lambda m: (*prefix, m)  # noqa: E731
    return [Constraint(k(REFERRALS), tuple(k(o) for o in facts.OUTCOMES)),
            Constraint(k(CANCELLED), (k(facts.CANCELLED_BEFORE), k(facts.CANCELLED_AFTER))),
            Constraint(k(DUE), (k(LATE), k(ON_TIME)))]


def cell_system(total: aggregate.Counts, by: dict[str, dict[str, aggregate.Counts]],
                reasons: dict[str, dict[tuple[str, str, str], int]]) -> tuple[dict, list[Constraint]]:
    """The values and constraints of a report: cells ("total", measure), (breakdown, category, measure),
    ("reason", kind, code) and ("reason", kind, code, breakdown, category)."""
    values: dict = {("total", m): v for m, v in _cells(total).items()}
    constraints = _row_constraints(("total",))
    codes_of: dict[str, set[str]] = {kind: set() for kind in REASON_WHOLE}
    for per_breakdown in reasons.values():
        for kind, _category, reason in per_breakdown:
            codes_of[kind].add(reason)
    for kind, reason_codes in codes_of.items():
        for reason in reason_codes:
            values[("reason", kind, reason)] = 0
        constraints.append(Constraint(("total", REASON_WHOLE[kind]),
                                      tuple(("reason", kind, r) for r in sorted(reason_codes))))
    first = True
    for breakdown, categories in by.items():
        for category, counts in categories.items():
            for m, v in _cells(counts).items():
                values[(breakdown, category, m)] = v
            constraints.extend(_row_constraints((breakdown, category)))
        for m in MEASURES:
            constraints.append(Constraint(("total", m), tuple((breakdown, c, m) for c in categories)))
        for kind, reason_codes in codes_of.items():
            for category in categories:
                for reason in reason_codes:
                    n = reasons[breakdown].get((kind, category, reason), 0)
                    values[("reason", kind, reason, breakdown, category)] = n
                constraints.append(Constraint((breakdown, category, REASON_WHOLE[kind]),
                                              tuple(("reason", kind, r, breakdown, category)
                                                    for r in sorted(reason_codes))))
            for reason in reason_codes:
                constraints.append(Constraint(("reason", kind, reason),
                                              tuple(("reason", kind, reason, breakdown, c) for c in categories)))
        if first:  # the reason totals: the sum over any one breakdown
            for (kind, _c, reason), n in reasons[breakdown].items():
                values[("reason", kind, reason)] += n
            first = False
    return values, constraints


def _rate(cells: dict, states: dict, prefix: tuple) -> float | None:
    accepted = [(*prefix, o) for o in facts.ACCEPTED_EVER]
    needed = accepted + [(*prefix, facts.DECLINED)]
    if any(states[k] != SHOWN for k in needed):
        return None
    yes = sum(cells[k] for k in accepted)
    decided = yes + cells[(*prefix, facts.DECLINED)]
    return round(yes / decided, 3) if decided else None


def _share(cells: dict, states: dict, prefix: tuple) -> float | None:
    due, late = (*prefix, DUE), (*prefix, LATE)
    if states[due] != SHOWN or states[late] != SHOWN or not cells[due]:
        return None
    return round(cells[late] / cells[due], 3)


async def build(conn: AsyncConnection, query: StatsQuery, now: datetime, threshold: int, organization_min: int,
                behind: int, median_breakdowns: tuple[str, ...]) -> Report:
    by: dict[str, dict[str, aggregate.Counts]] = {}
    reasons: dict[str, dict] = {}
    pooled_orgs: dict[str, str] = {}
    for breakdown in aggregate.BREAKDOWNS:
        by[breakdown] = await aggregate.counts(conn, breakdown, query.start, query.end, now)
        reasons[breakdown] = await aggregate.reasons(conn, breakdown, query.start, query.end)
    by["organization"], reasons["organization"], pooled_orgs = _pool(by["organization"], reasons["organization"],
                                                                     organization_min)
    for month in _months(query):
        by["month"].setdefault(month, aggregate.Counts())
    total = aggregate.Counts()
    for counts in by["month"].values():
        total.add(counts)
    values, constraints = cell_system(total, by, reasons)
    states = suppress(values, constraints, threshold)
    shown = {k: label(v, states[k], threshold) for k, v in values.items()}

    labels = {"month": {m: m for m in by["month"]},
              "service-type": {c: codes.display(codes.SERVICE_TYPE, c) or c for c in by["service-type"] if c},
              "area": await _names(conn, "Location", {c for c in by["area"] if c}),
              "priority": {c: c for c in by["priority"] if c},
              "organization": await _names(conn, "Organization",
                                           {c for c in by["organization"] if c and c != OTHER_ORGS})}
    labels["organization"][OTHER_ORGS] = f"other organisations (each fewer than {organization_min} referrals)"

    medians: dict[str, dict] = {}
    for breakdown in (None, *median_breakdowns):
        for measure in aggregate.MEDIANS:
            found = await aggregate.medians(conn, measure, breakdown, query.start, query.end,
                                            pooled_orgs if breakdown == "organization" else None)
            for category, (seconds, n) in found.items():
                medians.setdefault(breakdown or "", {}).setdefault(category, {})[measure] = \
                    round(seconds / 3600, 1) if n >= threshold else None

    def row(breakdown: str | None, category: str | None) -> Row:
        prefix = ("total",) if breakdown is None else (breakdown, category)
        hours = medians.get(breakdown or "", {}).get(category, {})
        return Row(category, "total" if breakdown is None else
                   labels[breakdown].get(category) or UNKNOWN_LABEL[breakdown] or category,
                   {m: shown[(*prefix, m)] for m in MEASURES if m != ON_TIME},
                   _rate(values, states, prefix), _share(values, states, prefix),
                   {m: hours.get(m) for m in aggregate.MEDIANS})

    tables = {}
    for breakdown, categories in by.items():
        order = sorted(categories, key=lambda c: (c == OTHER_ORGS, c == "", c))
        reason_rows = {}
        for kind in REASON_WHOLE:
            reason_codes = sorted({r for per in reasons.values() for (k, _c, r) in per if k == kind})
            reason_rows[kind] = [ReasonRow(kind, r, _reason_label(r), shown[("reason", kind, r)],
                                           {c: shown[("reason", kind, r, breakdown, c)] for c in order})
                                 for r in reason_codes]
        tables[breakdown] = Table(breakdown, [row(breakdown, c) for c in order], row(None, None), reason_rows)
    return Report(query, now, threshold, behind, tables)
