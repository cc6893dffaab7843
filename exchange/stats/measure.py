"""A statistics report as a FHIR R4 MeasureReport of Measure/referral-outcomes (conformance/), for systems that
prefer them: one group per measure, one stratifier per breakdown (all five, suppressed together as in
`exchange.stats.report`). A hidden count has no value: `_count` carries data-absent-reason `masked` and the
`suppressed-count` extension (below-threshold or complementary), so nothing is published that the JSON report
hides."""
from __future__ import annotations

from exchange.referral import codes
from exchange.stats import facts
from exchange.stats.report import CANCELLED, DUE, LATE, REFERRALS, Report, Row, Table
from exchange.store.clock import fhir_instant

MEASURE = f"{codes.BASE}/Measure/referral-outcomes"
MEASURE_CODES = f"{codes.BASE}/CodeSystem/gbv-referral-measure"
EXT_SUPPRESSED = f"{codes.BASE}/StructureDefinition/suppressed-count"
DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
PRIORITY = "http://hl7.org/fhir/request-priority"
UCUM = "http://unitsofmeasure.org"
COUNT_GROUPS = (REFERRALS, *facts.OUTCOMES)
MEDIAN_GROUPS = {"acknowledge": "time-to-acknowledge", "decide": "time-to-decide", "complete": "time-to-complete"}
REASON_GROUPS = {facts.DECLINED: "declined-reason", facts.FAILED: "failed-reason", "cancelled": "cancelled-reason"}
REASON_WHOLE = {facts.DECLINED: facts.DECLINED, facts.FAILED: facts.FAILED, "cancelled": CANCELLED}


def _code(code: str) -> dict:
    return {"coding": [{"system": MEASURE_CODES, "code": code}]}


def _population(kind: str, value: int | str | None) -> dict:
    out: dict = {"code": {"coding": [{"system": POPULATION, "code": kind}]}}
    if isinstance(value, int):
        out["count"] = value
    else:
        state = "below-threshold" if isinstance(value, str) and value.startswith("<") else "complementary"
        out["_count"] = {"extension": [{"url": DATA_ABSENT, "valueCode": "masked"},
                                       {"url": EXT_SUPPRESSED, "valueCode": state}]}
    return out


def _value(breakdown: str, row: Row) -> dict:
    if breakdown == "service-type" and row.category:
        return {"coding": [{"system": codes.SERVICE_TYPE, "code": row.category}], "text": row.label}
    if breakdown == "priority" and row.category in ("routine", "urgent", "asap", "stat"):
        return {"coding": [{"system": PRIORITY, "code": row.category}], "text": row.label}
    return {"text": row.label}


def _reason_value(code: str, label: str) -> dict:
    if code and code != facts.OTHER_REASON:
        system, _, value = code.partition("|")
        return {"coding": [{"system": system, "code": value}], "text": label}
    return {"text": label}


def _score(value: float | None, hours: bool = False) -> dict:
    if value is None:
        return {}
    score: dict = {"value": value}
    if hours:
        score.update(unit="h", system=UCUM, code="h")
    return {"measureScore": score}


def _accepted(row: Row) -> tuple[int | str, int | str]:
    """(accepted at some point, decided) when every count they add up is shown, else hidden."""
    cells = [row.cells[o] for o in (*facts.ACCEPTED_EVER, facts.DECLINED)]
    if not all(isinstance(c, int) for c in cells):
        return "suppressed", "suppressed"
    yes = sum(cells[:-1])
    return yes, yes + cells[-1]


def _group(code: str, tables: dict[str, Table], populations, score=None) -> dict:  # noqa: ANN001
    """`populations(row)` -> [(kind, value)], `score(row)` -> measureScore entries."""
    first = next(iter(tables.values()))
    group: dict = {"code": _code(code)}
    pops = populations(first.total)
    if pops:
        group["population"] = [_population(k, v) for k, v in pops]
    if score:
        group.update(score(first.total))
    group["stratifier"] = []
    for breakdown, table in tables.items():
        strata = []
        for row in table.rows:
            stratum: dict = {"value": _value(breakdown, row)}
            pops = populations(row)
            if pops:
                stratum["population"] = [_population(k, v) for k, v in pops]
            if score:
                stratum.update(score(row))
            strata.append(stratum)
        group["stratifier"].append({"code": [_code(breakdown)], **({"stratum": strata} if strata else {})})
    return group


def _reason_group(kind: str, tables: dict[str, Table]) -> dict:
    first = next(iter(tables.values()))
    group: dict = {"code": _code(REASON_GROUPS[kind]),
                   "population": [_population("initial-population", first.total.cells[REASON_WHOLE[kind]])]}
    reasons = first.reasons[kind]
    stratifiers = [{"code": [_code("reason")], **({"stratum": [
        {"value": _reason_value(r.code, r.label), "population": [_population("initial-population", r.total)]}
        for r in reasons]} if reasons else {})}]
    for breakdown, table in tables.items():
        strata = [{"component": [{"code": _code(breakdown), "value": _value(breakdown, row)},
                                 {"code": _code("reason"), "value": _reason_value(r.code, r.label)}],
                   "population": [_population("initial-population", r.by[row.category])]}
                  for r in table.reasons[kind] for row in table.rows]
        stratifiers.append({"code": [_code(breakdown), _code("reason")], **({"stratum": strata} if strata else {})})
    group["stratifier"] = stratifiers
    return group


def measure_report(report: Report) -> dict:
    tables = report.tables
    groups = [_group(code, tables, lambda row, c=code: [("initial-population", row.cells[c])]) for code in
              COUNT_GROUPS]
    groups.append(_group("acceptance-rate", tables,
                         lambda row: list(zip(("numerator", "denominator"), _accepted(row))),
                         lambda row: _score(row.acceptance_rate)))
    groups.append(_group("no-answer-by-deadline", tables,
                         lambda row: [("numerator", row.cells[LATE]), ("denominator", row.cells[DUE])],
                         lambda row: _score(row.no_answer_share)))
    for measure, code in MEDIAN_GROUPS.items():
        groups.append(_group(code, tables, lambda row: [],
                             lambda row, m=measure: _score(row.median_hours.get(m), hours=True)))
    for kind in REASON_GROUPS:
        groups.append(_reason_group(kind, tables))
    query = report.query
    return {"resourceType": "MeasureReport", "status": "complete" if report.behind == 0 else "pending",
            "type": "summary", "measure": MEASURE, "date": fhir_instant(report.generated),
            "reporter": {"display": "GBV referral exchange"},
            "period": {"start": query.start.date().isoformat(), "end": query.last_day.isoformat()},
            "group": groups}
