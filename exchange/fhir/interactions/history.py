"""history (instance level): every version, newest first, paged."""
from __future__ import annotations

from urllib.parse import urlencode

from exchange.context import RequestContext
from exchange.errors import NotFound
from exchange.fhir import bundles
from exchange.fhir.interactions.result import Result
from exchange.fhir.search import int_param
from exchange.fhir.validate import check_resource_type
from exchange.kernel.exchange import Exchange
from exchange.kernel.unit import Event, open_unit


async def history_instance(exchange: Exchange, ctx: RequestContext, resource_type: str, resource_id: str,
                           params: list[tuple[str, str]]) -> Result:
    check_resource_type(resource_type, resource_id)
    settings = exchange.settings
    args = dict(params)
    count = min(int_param("_count", args.get("_count", str(settings.default_page_size)), 1), settings.max_page_size)
    offset = int_param("_offset", args.get("_offset", "0"), 0)
    async with open_unit(exchange, ctx, "history-instance", resource_type, resource_id,
                         read_only=True) as unit:
        exchange.access_policy.check_permission(ctx, resource_type, "r")
        versions, total = await unit.repo.history(resource_type, resource_id, unit.access, count, offset)
        if total == 0:
            raise NotFound(f"{resource_type}/{resource_id} is not known", expression=f"{resource_type}.id")
        versions = await exchange.access_policy.shown(unit, versions)
        methods = await unit.repo.methods_of(resource_type, resource_id)
        unit.record(Event("history-instance", "R", resource_type, resource_id))
    base = settings.fhir_base_url
    url = f"{base}/{resource_type}/{resource_id}/_history"

    def link(relation: str, at: int) -> dict:
        query = {"_count": count, **({"_offset": at} if at else {})}
        return {"relation": relation, "url": f"{url}?{urlencode(query)}"}

    links = [link("self", offset)]
    if offset + count < total:
        links.append(link("next", offset + count))
    if offset:
        links.append(link("previous", max(offset - count, 0)))
    return Result(200, body=bundles.history(base, versions, methods, total, links))
