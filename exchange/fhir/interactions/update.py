"""update (PUT) with optimistic locking through If-Match; delete. No update as create (405, FHIR http.html)."""
from __future__ import annotations

from exchange.context import RequestContext
from exchange.errors import BadRequest, MethodNotAllowed, NotFound
from exchange.fhir.interactions.result import Result
from exchange.fhir.interactions.write import current_for_write, parse_etag, remove, replace
from exchange.fhir.validate import check_resource_type, validate_resource
from exchange.kernel.exchange import Exchange
from exchange.kernel.unit import open_unit


async def update(exchange: Exchange, ctx: RequestContext, resource_type: str, resource_id: str, body: object,
                 if_match: str | None = None) -> Result:
    check_resource_type(resource_type, resource_id)
    body = validate_resource(body, resource_type)
    if body.get("id") is None:
        raise BadRequest("The resource in an update must carry its id", expression=f"{resource_type}.id",
                         code="required")
    if body["id"] != resource_id:
        raise BadRequest("The body's id differs from the URL's id",
                         expression=f"{resource_type}.id")
    expected = parse_etag(if_match)
    async with open_unit(exchange, ctx, "update", resource_type, resource_id) as unit:
        try:
            current = await current_for_write(unit, resource_type, resource_id, expected)
        except NotFound:  # unknown, or not visible: the same answer, so existence does not leak
            raise MethodNotAllowed(f"{resource_type}/{resource_id} is not known and this server does not support "
                                   "update as create: create it with POST", expression=f"{resource_type}.id",
                                   headers={"Allow": "GET, HEAD"}) from None
        stored = await replace(unit, current, body, expected)
    return Result(200, stored=stored)


async def delete(exchange: Exchange, ctx: RequestContext, resource_type: str, resource_id: str,
                 if_match: str | None = None) -> Result:
    check_resource_type(resource_type, resource_id)
    expected = parse_etag(if_match)
    async with open_unit(exchange, ctx, "delete", resource_type, resource_id) as unit:
        current = await current_for_write(unit, resource_type, resource_id, expected)
        stored = await remove(unit, current)
    return Result(204, stored=stored)
