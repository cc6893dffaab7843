"""A search plan as SQL conditions over `resource` and `search_index` (the same SQL on SQLite and PostgreSQL)."""
from __future__ import annotations

from sqlalchemy import and_, exists, not_, or_

from exchange.fhir.indexing import normalise_string
from exchange.fhir.search import Criterion, DateValue, SearchPlan
from exchange.store.repository import to_db
from exchange.store.tables import resource, search_index


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _index_exists(plan: SearchPlan, criterion: Criterion, *conditions):
    return exists().where(and_(search_index.c.resource_type == plan.resource_type,
                               search_index.c.resource_id == resource.c.id,
                               search_index.c.param == criterion.name, *conditions))


def _range_condition(start_col, end_col, value: DateValue):  # noqa: ANN001
    """FHIR date prefixes over a stored range [start_col, end_col) against the parameter range."""
    ps, pe = to_db(value.start), to_db(value.end)
    return {
        "eq": and_(start_col >= ps, end_col <= pe),
        "ne": not_(and_(start_col >= ps, end_col <= pe)),
        "gt": end_col > pe,
        "ge": end_col > ps,
        "lt": start_col < ps,
        "le": start_col < pe,
        "sa": start_col >= pe,
        "eb": end_col <= ps,
        "ap": and_(start_col < pe, end_col > ps),
    }[value.prefix]


def instant_condition(column, value: DateValue):  # noqa: ANN001
    ps, pe = to_db(value.start), to_db(value.end)
    return {
        "eq": and_(column >= ps, column < pe),
        "ne": or_(column < ps, column >= pe),
        "gt": column >= pe,
        "ge": column >= ps,
        "lt": column < ps,
        "le": column < pe,
        "sa": column >= pe,
        "eb": column < ps,
        "ap": and_(column >= ps, column < pe),
    }[value.prefix]


def _value_condition(criterion: Criterion, value):  # noqa: ANN001
    if criterion.type == "token":
        system, code, system_given = value
        parts = []
        if system_given:
            parts.append(search_index.c.system == system if system else search_index.c.system.is_(None))
        if code is not None:
            parts.append(search_index.c.value == code)
        return and_(*parts)
    if criterion.type == "reference":
        target_type, target_id = value
        parts = [search_index.c.value == target_id]
        if target_type:
            parts.append(search_index.c.system == target_type)
        return and_(*parts)
    if criterion.type == "string":
        if criterion.modifier == "exact":
            return search_index.c.text == value
        needle = _escape_like(normalise_string(value))
        pattern = f"%{needle}%" if criterion.modifier == "contains" else f"{needle}%"
        return search_index.c.value.like(pattern, escape="\\")
    if criterion.type == "uri":
        return search_index.c.value == value
    if criterion.type == "date":
        return _range_condition(search_index.c.date_start, search_index.c.date_end, value)
    raise ValueError(criterion.type)


def criterion_condition(plan: SearchPlan, criterion: Criterion):
    if criterion.type == "id":
        return resource.c.id.in_(list(criterion.values))
    if criterion.type == "lastUpdated":
        return or_(*[instant_condition(resource.c.last_updated, v) for v in criterion.values])
    if criterion.modifier == "missing":
        present = _index_exists(plan, criterion)
        return not_(present) if criterion.values[0] else present
    if criterion.modifier == "not":
        return not_(_index_exists(plan, criterion, or_(*[_value_condition(criterion, v) for v in criterion.values])))
    return _index_exists(plan, criterion, or_(*[_value_condition(criterion, v) for v in criterion.values]))


def plan_conditions(plan: SearchPlan) -> list:
    return [criterion_condition(plan, c) for c in plan.criteria]


def plan_order(plan: SearchPlan) -> list:
    order = []
    for column, desc in plan.sort or [("last_updated", False)]:
        col = resource.c[column]
        order.append(col.desc() if desc else col.asc())
    order.append(resource.c.id.asc())
    return order
