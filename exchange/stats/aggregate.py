"""The statistics queries: SQL aggregates over `referral_fact`'s indexed columns, the same on SQLite and PostgreSQL.

No query returns a referral: counts come grouped by category and outcome, medians from window functions. A period
is [start, end) of the time the referral was sent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.stats import facts
from exchange.stats.tables import referral_fact as rf
from exchange.store.clock import to_db

BREAKDOWNS = {"month": rf.c.month, "service-type": rf.c.service_type, "area": rf.c.area_id,
              "priority": rf.c.priority, "organization": rf.c.owner_org}
MEDIANS = {"acknowledge": rf.c.acknowledge_seconds, "decide": rf.c.decide_seconds,
           "complete": rf.c.complete_seconds}


@dataclass
class Counts:
    """One category's counts: referrals by outcome, and the acknowledgement deadlines passed and missed."""
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(facts.OUTCOMES, 0))
    due: int = 0  # acknowledgement deadline passed (before `now`)
    late: int = 0  # ... and not acknowledged by it

    def add(self, other: "Counts") -> None:
        for outcome, n in other.outcomes.items():
            self.outcomes[outcome] += n
        self.due += other.due
        self.late += other.late

    @property
    def referrals(self) -> int:
        return sum(self.outcomes.values())


def _period(start: datetime, end: datetime):  # noqa: ANN202
    return and_(rf.c.sent >= to_db(start), rf.c.sent < to_db(end))


async def counts(conn: AsyncConnection, breakdown: str, start: datetime, end: datetime, now: datetime
                 ) -> dict[str, Counts]:
    """{category: Counts} of the referrals sent in the period."""
    group = BREAKDOWNS[breakdown]
    due = rf.c.acknowledge_due <= to_db(now)
    late = and_(due, or_(rf.c.acknowledged.is_(None), rf.c.acknowledged > rf.c.acknowledge_due))
    columns = [func.sum(case((rf.c.outcome == o, 1), else_=0)) for o in facts.OUTCOMES]
    rows = (await conn.execute(
        select(group, *columns, func.sum(case((due, 1), else_=0)), func.sum(case((late, 1), else_=0)))
        .where(_period(start, end)).group_by(group))).all()
    out = {}
    for row in rows:
        values = [int(v or 0) for v in row[1:]]
        out[row[0]] = Counts(dict(zip(facts.OUTCOMES, values)), values[-2], values[-1])
    return out


async def reasons(conn: AsyncConnection, breakdown: str, start: datetime, end: datetime
                  ) -> dict[tuple[str, str, str], int]:
    """{(reason kind, category, reason): count} of declined, failed and cancelled referrals."""
    group = BREAKDOWNS[breakdown]
    kind_of = {o: kind for kind, outcomes in facts.REASON_OUTCOMES.items() for o in outcomes}
    rows = (await conn.execute(
        select(group, rf.c.outcome, rf.c.reason, func.count())
        .where(_period(start, end), rf.c.outcome.in_(sorted(kind_of))).group_by(group, rf.c.outcome, rf.c.reason)
    )).all()
    out: dict[tuple[str, str, str], int] = {}
    for category, outcome, reason, n in rows:
        key = (kind_of[outcome], category, reason)
        out[key] = out.get(key, 0) + int(n)
    return out


async def medians(conn: AsyncConnection, measure: str, breakdown: str | None, start: datetime, end: datetime,
                  pooled: dict[str, str] | None = None) -> dict[str | None, tuple[float, int]]:
    """{category: (median seconds, how many)} of one duration; one entry, None, when `breakdown` is None.
    `pooled` maps categories to the category they are reported under (organisations too small to be named)."""
    value = MEDIANS[measure]
    if breakdown is None:
        group = literal("")
    elif pooled:
        group = case(*((BREAKDOWNS[breakdown] == k, v) for k, v in sorted(pooled.items())),
                     else_=BREAKDOWNS[breakdown])
    else:
        group = BREAKDOWNS[breakdown]
    ranked = select(group.label("g"), value.label("v"),
                    func.row_number().over(partition_by=group, order_by=value).label("rn"),
                    func.count().over(partition_by=group).label("n")
                    ).where(_period(start, end), value.is_not(None)).subquery()
    middle = or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2)
    rows = (await conn.execute(select(ranked.c.g, func.avg(ranked.c.v), func.max(ranked.c.n))
                               .where(middle).group_by(ranked.c.g))).all()
    if breakdown is None:
        return {None: (float(rows[0][1]), int(rows[0][2]))} if rows else {}
    return {row[0]: (float(row[1]), int(row[2])) for row in rows}
