"""create and conditional create (If-None-Exist)."""
from __future__ import annotations

from urllib.parse import parse_qsl

from exchange.context import RequestContext
from exchange.errors import BadRequest, PreconditionFailed
from exchange.fhir.interactions.result import Result
from exchange.fhir.interactions.write import insert_new
from exchange.fhir.search import SearchPlan, parse_search
from exchange.fhir.validate import validate_resource
from exchange.kernel.exchange import Exchange
from exchange.fhir.search_sql import plan_conditions, plan_order
from exchange.store.values import StoredResource
from exchange.kernel.unit import Event, Unit, open_unit


def condition_plan(exchange: Exchange, resource_type: str, if_none_exist: str) -> SearchPlan:
    query = if_none_exist.strip()
    if "?" in query:
        prefix, _, query = query.partition("?")
        if prefix and prefix.rsplit("/", 1)[-1] != resource_type:
            raise BadRequest(f"If-None-Exist must search {resource_type}", expression="If-None-Exist")
    params = parse_qsl(query, keep_blank_values=True)
    if not params:
        raise BadRequest("If-None-Exist must hold search parameters, e.g. identifier=system|value",
                         expression="If-None-Exist")
    plan = parse_search(resource_type, params, strict=True, default_count=2, max_count=2,
                        limits=exchange.settings.search_limits)
    if not plan.criteria:
        raise BadRequest("If-None-Exist must hold at least one search criterion", expression="If-None-Exist")
    plan.count, plan.offset = 2, 0
    return plan


def condition_keys(plan: SearchPlan) -> list[str]:
    """The canonical lock keys of a condition: one per value a matching resource must be indexed with.

    Spelling does not change them: `identifier=S|V`, `identifier=V` and `Patient?identifier=V&_count=5` all lock
    `identifier|V` (a token's code, a reference's id, without system or type), so concurrent creates that could
    match the same resource queue on the same row. Criteria without such a value (strings, dates, `:missing`,
    `:not`, a system without a code) lock their parameter name. Two conditions on entirely different parameters
    share no key and are not serialised against each other.
    """
    keys: set[str] = set()
    for criterion in plan.criteria:
        if criterion.modifier in ("missing", "not") or criterion.type not in ("token", "reference", "id"):
            keys.add(criterion.name)
            continue
        for value in criterion.values:
            code = value if criterion.type == "id" else value[1]
            keys.add(criterion.name if code is None else f"{criterion.name}|{code}")
    return sorted(keys)


async def find_existing(unit: Unit, plan: SearchPlan) -> list:
    """Matches of a conditional create, after taking the condition's locks (in one global order, so two
    transactions never wait for each other in a cycle): concurrent creates that could match the same resource
    run one after the other, and the second sees what the first created. The condition is a search, and a match
    tells the caller the resource exists: the caller needs the search scope before anything is looked up (without
    it a client could probe for a record by its identifier); the create scope is checked when one is created (a
    match creates nothing: a transaction may name a directory entry it may not create by its identifier)."""
    unit.exchange.access_policy.check_permission(unit.ctx, plan.resource_type, "s")
    for key in condition_keys(plan):
        await unit.repo.lock_condition(plan.resource_type, key, unit.dialect)
    matches, _ = await unit.repo.search(plan.resource_type, plan_conditions(plan, unit.access), plan_order(plan), 2, 0,
                                        unit.access, with_total=False)
    return matches


async def existing_match(unit: Unit, plan: SearchPlan, condition: str, expression: str | None = None):  # noqa: ANN201
    """The one resource a conditional create's condition matches (None: create it); several answer 412. `condition`
    names it in the error: the If-None-Exist header, or a Bundle entry's ifNoneExist."""
    matches = await find_existing(unit, plan)
    if len(matches) > 1:
        raise PreconditionFailed(f"{condition} matches more than one resource", expression=expression)
    return matches[0] if matches else None


async def matched_in(unit: Unit, found: StoredResource) -> Result:
    """A conditional create whose condition matched `found`, in `unit`: the route's and a Bundle entry's. The caller
    is told of the resource (its id and version, and all of it with return=representation): a disclosure, shown as
    a read shows it (a confidential entry redacted for a non-party) and recorded as the create's read (action R) in
    the unit's own transaction, as every disclosure is."""
    [found] = await unit.exchange.access_policy.shown(unit, [found])
    unit.record(Event("create", "R", found.resource_type, found.id, found.version_id, stored=found))
    return Result(200, stored=found)


async def create_in(unit: Unit, resource_type: str, body: dict, resource_id: str | None = None) -> Result:
    """The create in `unit`, of a validated body no condition matched: the route's and a Bundle entry's."""
    stored = await insert_new(unit, resource_type, body, resource_id)
    return Result(201, stored=stored, location=True)


async def create(exchange: Exchange, ctx: RequestContext, resource_type: str, body: object,
                 if_none_exist: str | None = None, resource_id: str | None = None) -> Result:
    """`resource_id` is for the exchange's own entries only (the demo's stable ids); partners' ids are assigned."""
    body = validate_resource(body, resource_type)
    plan = condition_plan(exchange, resource_type, if_none_exist) if if_none_exist else None
    async with open_unit(exchange, ctx, "create", resource_type) as unit:
        found = await existing_match(unit, plan, "If-None-Exist", "If-None-Exist") if plan is not None else None
        if found is not None:
            return await matched_in(unit, found)
        return await create_in(unit, resource_type, body, resource_id)
