"""update (PUT) with optimistic locking through If-Match; delete. No update as create (405, FHIR http.html)."""
from __future__ import annotations

from exchange.context import RequestContext
from exchange.errors import BadRequest, MethodNotAllowed, NotFound
from exchange.fhir.interactions.result import Result
from exchange.fhir.interactions.write import current_for_write, parse_etag, remove, replace
from exchange.fhir.validate import check_resource_type, validate_resource
from exchange.kernel.exchange import Exchange
from exchange.kernel.unit import Unit, open_unit


def check_update_id(resource_type: str, resource_id: str, body: dict) -> None:
    """An update's body carries the id of the url it is sent to: the route's check (before its unit, like the rest
    of the body's) and a Bundle entry's, so both answer the same."""
    if body.get("id") is None:
        raise BadRequest("The resource in an update must carry its id", expression=f"{resource_type}.id",
                         code="required")
    if body["id"] != resource_id:
        raise BadRequest("The body's id differs from the URL's id", expression=f"{resource_type}.id")


def _no_update_as_create(resource_type: str, resource_id: str) -> MethodNotAllowed:
    return MethodNotAllowed(f"{resource_type}/{resource_id} is not known and this server does not support "
                            "update as create: create it with POST", expression=f"{resource_type}.id",
                            headers={"Allow": "GET, HEAD"})


async def update_in(unit: Unit, resource_type: str, resource_id: str, body: dict, expected: int | None) -> Result:
    """The update in `unit` (the route's and a Bundle entry's), `expected` the If-Match version, of a body that
    passed `check_update_id`. A resource the caller does not know is 405: the server does not update as create
    (CapabilityStatement updateCreate false; FHIR http.html)."""
    try:
        current = await current_for_write(unit, resource_type, resource_id, expected)
    except NotFound:  # unknown, or not visible: the same answer, so existence does not leak
        raise _no_update_as_create(resource_type, resource_id) from None
    return Result(200, stored=await replace(unit, current, body, expected))


async def update(exchange: Exchange, ctx: RequestContext, resource_type: str, resource_id: str, body: object,
                 if_match: str | None = None) -> Result:
    check_resource_type(resource_type, resource_id)
    body = validate_resource(body, resource_type)
    check_update_id(resource_type, resource_id, body)
    expected = parse_etag(if_match)
    async with open_unit(exchange, ctx, "update", resource_type, resource_id) as unit:
        return await update_in(unit, resource_type, resource_id, body, expected)


async def delete_in(unit: Unit, resource_type: str, resource_id: str, expected: int | None) -> Result:
    """The delete in `unit` (the route's and a Bundle entry's), `expected` the If-Match version."""
    current = await current_for_write(unit, resource_type, resource_id, expected)
    return Result(204, stored=await remove(unit, current))


async def delete(exchange: Exchange, ctx: RequestContext, resource_type: str, resource_id: str,
                 if_match: str | None = None) -> Result:
    check_resource_type(resource_type, resource_id)
    expected = parse_etag(if_match)
    async with open_unit(exchange, ctx, "delete", resource_type, resource_id) as unit:
        return await delete_in(unit, resource_type, resource_id, expected)
