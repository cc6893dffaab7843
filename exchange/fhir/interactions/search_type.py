"""search (type level) by GET or POST _search, with _include and _revinclude under the same access filter.

Who may search, what the caller sees and how it is shown are the exchange's access policy's
(`Exchange.access_policy`, `exchange.kernel.access`)."""
from __future__ import annotations

from exchange.context import RequestContext
from exchange.errors import BadRequest
from exchange.fhir import bundles, page_tokens
from exchange.fhir.definitions import CONFIDENTIAL_SEARCH_PARAMS, index_name, search_param
from exchange.fhir.interactions.result import Result
from exchange.fhir.search import SearchPlan, identifying, page_links, parse_search
from exchange.fhir.validate import check_resource_type
from exchange.kernel.exchange import Exchange
from exchange.store.values import StoredResource
from exchange.fhir.search_sql import plan_search, shaped_search
from exchange.kernel.unit import Event, Unit, open_unit


def _over_budget(name: str, budget: int) -> BadRequest:
    return BadRequest(f"This search would return more than {budget} resources, the most one request may return: "
                      f"lower _count or drop {name}", expression=name, code="too-costly")


async def _included(unit: Unit, plan: SearchPlan, matches: list[StoredResource], budget: int
                    ) -> list[StoredResource]:
    """The resources _include and _revinclude add; refused (too-costly) beyond `budget` resources in all."""
    policy = unit.exchange.access_policy
    seen = {(m.resource_type, m.id) for m in matches}
    out: list[StoredResource] = []
    ids = [m.id for m in matches]
    for include in plan.includes:
        sources = ids
        if include.param in CONFIDENTIAL_SEARCH_PARAMS.get(plan.resource_type, ()):  # a link a non-party does not see
            shown = await policy.shown(unit, matches)
            sources = [m.id for m, s in zip(matches, shown) if s is m]
        targets = await unit.repo.references_from(plan.resource_type, sources,
                                                  index_name(plan.resource_type, include.param))
        if include.target_type:
            targets = [t for t in targets if t[0] == include.target_type]
        if len(seen | set(targets)) > budget:
            raise _over_budget("_include", budget)
        for stored in await unit.repo.read_many(targets, unit.access):
            if (stored.resource_type, stored.id) not in seen and policy.may(unit.ctx, stored.resource_type, "r"):
                seen.add((stored.resource_type, stored.id))
                out.append(stored)
    for rev in plan.revincludes:
        param = search_param(rev.source_type, rev.param)
        if param is None:
            continue
        referring = await unit.repo.referring_ids(rev.source_type, index_name(rev.source_type, rev.param),
                                                  [(m.resource_type, m.id) for m in matches])
        if len(seen | {(rev.source_type, i) for i in referring}) > budget:
            raise _over_budget("_revinclude", budget)
        for stored in await unit.repo.read_many([(rev.source_type, i) for i in referring], unit.access):
            if (stored.resource_type, stored.id) not in seen and policy.may(unit.ctx, stored.resource_type, "r"):
                seen.add((stored.resource_type, stored.id))
                out.append(stored)
    return out


def plan_of(exchange: Exchange, resource_type: str, params: list[tuple[str, str]], strict: bool) -> SearchPlan:
    """The search's plan, with the deployment's page sizes and limits (the route's and a Bundle entry's)."""
    settings = exchange.settings
    return parse_search(resource_type, params, strict=strict, default_count=settings.default_page_size,
                        max_count=settings.max_page_size, limits=settings.search_limits)


async def search(exchange: Exchange, ctx: RequestContext, resource_type: str, params: list[tuple[str, str]],
                 strict: bool = False) -> Result:
    check_resource_type(resource_type)
    tokens = [v for k, v in params if k == page_tokens.PARAM]
    if tokens:  # a page of an earlier search: its parameters come from the token, only paging from the URL
        if len(tokens) > 1 or any(k not in _PAGING for k, _ in params):
            raise BadRequest(f"{page_tokens.PARAM} takes only _count and _offset beside it",
                             expression=page_tokens.PARAM)
        stored = page_tokens.unseal(await page_tokens.page_key(exchange.keys), tokens[0], resource_type,
                                    ctx.client_id)
        params = stored + [(k, v) for k, v in params if k in ("_count", "_offset")]
    plan = plan_of(exchange, resource_type, params, strict)
    if identifying(plan):
        await exchange.keys.current()  # loaded outside the unit (it may have to write the first key)
    async with open_unit(exchange, ctx, "search-type", resource_type, read_only=True) as unit:
        bundle = await search_in(unit, plan)
    return Result(200, body=bundle)


_PAGING = (page_tokens.PARAM, "_count", "_offset", "_format", "_pretty")


async def search_in(unit: Unit, plan: SearchPlan, budget: int | None = None) -> dict:
    """Run `plan` in `unit` and return the searchset Bundle of at most `budget` resources (default: the most one
    request may return, `Settings.request_max_resources`)."""
    policy = unit.exchange.access_policy
    policy.check_permission(unit.ctx, plan.resource_type, "s")
    for chained in sorted({t for c in plan.criteria for t in c.chained_types()}):
        policy.check_permission(unit.ctx, chained, "s")  # a chain searches its target type too
    limit = unit.exchange.settings.request_max_resources
    budget = limit if budget is None else min(budget, limit)
    count = 0 if plan.summary_count else min(plan.count, budget)
    with_total = plan.total or plan.summary_count
    shaped = shaped_search(plan, unit.access)
    if shaped is not None:  # (a known shape: its statement compiled once)
        matches, total = await unit.repo.search_shaped(plan.resource_type, shaped, count, plan.offset, unit.access,
                                                       with_total=with_total)
    else:
        conditions, order, first_by = plan_search(plan, unit.access)
        matches, total = await unit.repo.search(plan.resource_type, conditions, order, count, plan.offset,
                                                unit.access, with_total=with_total, first_by=first_by)
    included = await _included(unit, plan, matches, budget) if matches else []
    matches = await policy.shown(unit, matches)
    included = await policy.shown(unit, included)
    unit.record(Event("search-type", "E", plan.resource_type, query=list(plan.echo)))
    for stored in matches + included:
        unit.record(Event("search-type", "R", stored.resource_type, stored.id, stored.version_id, stored=stored))
    base = unit.exchange.settings.fhir_base_url
    token = None
    if identifying(plan):
        token = page_tokens.seal(await page_tokens.page_key(unit.exchange.keys), plan.resource_type, plan.echo,
                                 unit.ctx.client_id, unit.exchange.settings.search_page_token_seconds)
    links = page_links(base, plan, total, len(matches), token)
    return bundles.searchset(base, matches, included, total, links)
