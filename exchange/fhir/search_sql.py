"""A search plan as SQL conditions over `resource` and `search_index` (the same SQL on SQLite and PostgreSQL)."""
from __future__ import annotations

from sqlalchemy import and_, bindparam, exists, not_, or_, select

from exchange.fhir.definitions import CONFIDENTIAL_OWNER_PARAM, CONFIDENTIAL_SEARCH_PARAMS, index_name
from exchange.fhir.indexing import COMBINED_KEYS, combined_value, normalise_string
from exchange.fhir.search import Criterion, DateValue, SearchPlan
from exchange.store.clock import to_db
from exchange.store.reads import Shaped
from exchange.store.tables import resource, search_index
from exchange.store.visibility import AccessFilter, visible_clause


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _exists_in(resource_type: str, res, idx, name: str, *conditions):  # noqa: ANN001
    """EXISTS an index row of parameter `name` (in `idx`, the search_index table or an alias) of the resource row
    `res` (its own rows, or those of the parameter it shares them with: `index_name`)."""
    return exists().where(and_(idx.c.resource_type == resource_type, idx.c.resource_id == res.c.id,
                               idx.c.param == index_name(resource_type, name), *conditions))


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
    return instant_between(column, value.prefix, to_db(value.start), to_db(value.end))


def instant_between(column, prefix: str, ps, pe):  # noqa: ANN001, ANN201
    """A FHIR date prefix over an instant column against the parameter's range [ps, pe) (values or bind
    parameters)."""
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
    }[prefix]


def _value_condition(criterion: Criterion, value, idx=search_index):  # noqa: ANN001
    if criterion.type == "token":
        system, code, system_given = value
        parts = []
        if system_given:
            parts.append(idx.c.system == system if system else idx.c.system.is_(None))
        if code is not None:
            parts.append(idx.c.value == code)
        return and_(*parts)
    if criterion.type == "reference":
        target_type, target_id = value
        parts = [idx.c.value == target_id]
        if target_type:
            parts.append(idx.c.system == target_type)
        return and_(*parts)
    if criterion.type == "string":
        if criterion.modifier == "exact":
            return idx.c.text == value
        needle = _escape_like(normalise_string(value))
        pattern = f"%{needle}%" if criterion.modifier == "contains" else f"{needle}%"
        return idx.c.value.like(pattern, escape="\\")
    if criterion.type == "uri":
        return idx.c.value == value
    if criterion.type == "date":  # (a date row always has its start: the condition ix_search_date's rows meet)
        return and_(idx.c.date_start.isnot(None), _range_condition(idx.c.date_start, idx.c.date_end, value))
    raise ValueError(criterion.type)


def _condition(resource_type: str, criterion: Criterion, res, idx, access: AccessFilter | None):  # noqa: ANN001
    """One criterion over the resource rows `res` and index rows `idx` of `resource_type`."""
    condition = _plain_condition(resource_type, criterion, res, idx, access)
    if criterion.name in CONFIDENTIAL_SEARCH_PARAMS.get(resource_type, ()) and (
            access is None or access.organization_id is not None):
        condition = and_(condition, _not_hidden(resource_type, res, access))
    return condition


def _not_hidden(resource_type: str, res, access: AccessFilter | None):  # noqa: ANN001
    """The entry is not confidential, or it is the caller's own organisation's (a search on an element a non-party
    does not see must not find a confidential entry for it: `exchange.auth.confidential`)."""
    flag, own = search_index.alias(), search_index.alias()
    condition = not_(_exists_in(resource_type, res, flag, "confidential", flag.c.value == "true"))
    if access is not None and access.organization_id:
        condition = or_(condition, _exists_in(resource_type, res, own, CONFIDENTIAL_OWNER_PARAM[resource_type],
                                              own.c.system == "Organization",
                                              own.c.value == access.organization_id))
    return condition


def _plain_condition(resource_type: str, criterion: Criterion, res, idx, access: AccessFilter | None):  # noqa: ANN001
    if criterion.type == "id":
        return res.c.id.in_(list(criterion.values))
    if criterion.type == "lastUpdated":
        return or_(*[instant_condition(res.c.last_updated, v) for v in criterion.values])
    if criterion.type == "chain":
        return _chain_condition(resource_type, criterion, res, idx, access)
    if criterion.modifier == "missing":
        present = _exists_in(resource_type, res, idx, criterion.name)
        return not_(present) if criterion.values[0] else present
    matches = or_(*[_value_condition(criterion, v, idx) for v in criterion.values])
    if criterion.modifier == "not":
        return not_(_exists_in(resource_type, res, idx, criterion.name, matches))
    return _exists_in(resource_type, res, idx, criterion.name, matches)


def _chain_condition(resource_type: str, criterion: Criterion, res, idx, access: AccessFilter | None):  # noqa: ANN001
    """The reference parameter's index rows point at a target the caller may see that matches the inner criterion
    (`value IN (SELECT id ...)`: the index on (resource_type, param, system, value) serves both sides). A chain
    never looks through a resource the caller could not read: the target rows carry the caller's access filter."""
    if access is None:
        raise ValueError("a chained search needs the caller's access filter")
    alternatives = [and_(idx.c.system == t, idx.c.value == i) for t, i in criterion.values]  # direct references
    for target_type, inner in criterion.chain:
        target, target_index = resource.alias(), search_index.alias()
        where = [target.c.resource_type == target_type, target.c.deleted.is_(False),
                 _condition(target_type, inner, target, target_index, access)]
        clause = visible_clause(target, target_type, access)
        if clause is not None:
            where.append(clause)
        alternatives.append(and_(idx.c.system == target_type, idx.c.value.in_(select(target.c.id).where(*where))))
    return _exists_in(resource_type, res, idx, criterion.name, or_(*alternatives))


def criterion_condition(plan: SearchPlan, criterion: Criterion, access: AccessFilter | None = None):
    return _condition(plan.resource_type, criterion, resource, search_index, access)


def plan_conditions(plan: SearchPlan, access: AccessFilter | None = None) -> list:
    """The plan's conditions; `access` (the caller's filter) is needed by chained criteria."""
    combined, covered = _combined_conditions(plan)
    return [*(criterion_condition(plan, c, access) for c in plan.criteria if id(c) not in covered), *combined]


_MOST_COMBINED = 100  # value pairs of one combined condition; past that the criteria alone decide


def _combined_keys(plan: SearchPlan) -> list[tuple[str, list[tuple[str | None, str]], set[int]]]:
    """The combined keys (`exchange.fhir.indexing.COMBINED_KEYS`) that hold two plain criteria of the plan together:
    (key, its (target type, combined value) pairs, the criteria it covers by identity)."""
    out = []
    for key, first, second in COMBINED_KEYS.get(plan.resource_type, ()):
        firsts = [c for c in plan.criteria if c.name == first]
        seconds = [c for c in plan.criteria if c.name == second]
        if len(firsts) != 1 or len(seconds) != 1:
            continue
        ref, token = firsts[0], seconds[0]
        if ref.type != "reference" or ref.modifier or ref.chain or token.type != "token" or token.modifier:
            continue
        codes = [code for _system, code, _given in token.values]
        if None in codes or any(given for _s, _c, given in token.values) \
                or len(ref.values) * len(codes) > _MOST_COMBINED:
            continue  # (a code system asked for: the key does not hold it)
        pairs = [(target_type, combined_value(target_id, code)) for target_type, target_id in ref.values
                 for code in codes]
        out.append((key, pairs, {id(ref), id(token)}))
    return out


def _key_condition(plan: SearchPlan, key: str, pairs: list[tuple[str | None, str]]):  # noqa: ANN202
    return _exists_in(plan.resource_type, resource, search_index, key, or_(*(
        and_(search_index.c.value == value, *([search_index.c.system == target_type] if target_type else []))
        for target_type, value in pairs)))


def _combined_conditions(plan: SearchPlan) -> tuple[list, set[int]]:
    """For two plain criteria that a combined key holds together: the key's one condition instead of theirs, and
    which criteria it covers (by identity). It selects the same rows (every stored pair of values has its key row),
    and the database finds them by the one key instead of probing every row of the first criterion for the second
    (with both conditions, PostgreSQL still drove from the first)."""
    out, covered = [], set()
    for key, pairs, criteria in _combined_keys(plan):
        out.append(_key_condition(plan, key, pairs))
        covered |= criteria
    return out, covered


def plan_order(plan: SearchPlan) -> list:
    order = []
    for column, desc in plan.sort or [("last_updated", False)]:
        col = resource.c[column]
        order.append(col.desc() if desc else col.asc())
    order.append(resource.c.id.asc())
    return order


def _driving_key(plan: SearchPlan) -> tuple[str, str, str, set[int]] | None:
    """The one index key a page of the plan can be read off in order: (its rows' param, target type, value, the
    criteria it stands for). A combined key of one pair, or else a reference criterion of one typed value that no
    combined key holds (a key of several pairs finds its few resources better) and that is not confidential (such a
    criterion needs its own condition); None when the plan sorts by anything but `_lastUpdated`."""
    if len(plan.sort) > 1 or (plan.sort and plan.sort[0][0] != "last_updated"):
        return None
    keys = _combined_keys(plan)
    for key, pairs, criteria in keys:
        if len(pairs) == 1 and pairs[0][0]:
            return key, pairs[0][0], pairs[0][1], criteria
    combined = {i for _key, _pairs, criteria in keys for i in criteria}  # (their key finds them better)
    for c in plan.criteria:
        if c.type == "reference" and not c.modifier and not c.chain and len(c.values) == 1 and c.values[0][0] \
                and id(c) not in combined and c.name not in CONFIDENTIAL_SEARCH_PARAMS.get(plan.resource_type, ()):
            return index_name(plan.resource_type, c.name), c.values[0][0], c.values[0][1], {id(c)}
    return None


_DRIVER = search_index.alias("driver")  # (one alias for every search: its column proxies made once)
_DRIVER_PARAMS = ("driver_param", "driver_system", "driver_value")  # (bind parameter names of the driving key)


def plan_search(plan: SearchPlan, access: AccessFilter | None = None) -> tuple[list, list, object | None]:
    """The conditions and order of a page of the plan's results: the rows and order of `plan_conditions` and
    `plan_order`, found so that the first page costs the same however long the history behind it.

    When the plan sorts by `_lastUpdated` (or in the default order, oldest first) and holds one value of a
    reference, or one pair of a combined key (`Task?requester=Organization/x`, `Task?owner=...&status=requested`),
    the resources are joined to that key's index rows, whose `last_updated` is their resource's, and ordered by it:
    the database reads the page off ix_search_value_updated in order and stops, instead of finding every resource
    with that value and sorting them. The join adds no row: a resource's index rows are distinct in
    (param, system, value). Ties in time are ordered by id, as before. Returns (conditions, order, the order's
    leading key as the index yields it, or None): `Repository.search(first_by=...)`."""
    driving = _driving_key(plan)
    if driving is None:
        return plan_conditions(plan, access), plan_order(plan), None
    param, target_type, value, stands_for = driving
    key = _DRIVER
    conditions = [key.c.resource_type == plan.resource_type, key.c.resource_id == resource.c.id,
                  key.c.param == bindparam("driver_param", param), key.c.value == bindparam("driver_value", value),
                  key.c.system == bindparam("driver_system", target_type)]
    covered: set[int] = set(stands_for)
    for name, pairs, criteria in _combined_keys(plan):
        if criteria != stands_for:
            conditions.append(_key_condition(plan, name, pairs))
            covered |= criteria
    conditions += [criterion_condition(plan, c, access) for c in plan.criteria if id(c) not in covered]
    descending = bool(plan.sort) and plan.sort[0][1]
    first_by = key.c.last_updated.desc() if descending else key.c.last_updated.asc()
    return conditions, [first_by, resource.c.id.asc()], first_by


def shaped_search(plan: SearchPlan, access: AccessFilter | None = None) -> Shaped | None:
    """The plan as a search of a known shape (`Repository.search_shaped`: one statement a shape, compiled once)
    when its driving key stands for every criterion (an inbox: `owner=...&status=...`, a hotline's
    `requester=...`), in `_lastUpdated` order or the default one: its only values are the key's, bound by name
    (`plan_search`). None for any other plan (`plan_search` builds its statement each time)."""
    driving = _driving_key(plan)
    if driving is None:
        return None
    param, target_type, value, stands_for = driving
    if any(id(c) not in stands_for for c in plan.criteria):
        return None
    descending = bool(plan.sort) and plan.sort[0][1]
    return Shaped(("driven", descending), dict(zip(_DRIVER_PARAMS, (param, target_type, value))),
                  lambda: plan_search(plan, access), lambda: _driver_rows(plan))


def _driver_rows(plan: SearchPlan) -> tuple[object, list, object]:
    """The driving key's index rows of a plan it stands for alone: one a match (a resource's index rows are
    distinct in (param, system, value), and only current, undeleted versions have them), so a count of a full
    page's matches reads neither the resource rows nor their JSON (`Shaped.counted`)."""
    key = _DRIVER
    return key, [key.c.resource_type == plan.resource_type, key.c.param == bindparam("driver_param"),
                 key.c.value == bindparam("driver_value"), key.c.system == bindparam("driver_system")], \
        key.c.resource_id
