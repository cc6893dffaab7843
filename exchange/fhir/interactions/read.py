"""read and vread. A resource the caller may not see does not exist for it (404, never 403).

Who may read, what the caller sees and how it is shown are the exchange's access policy's (`Exchange.access_policy`,
`exchange.kernel.access`)."""
from __future__ import annotations

from exchange.context import RequestContext
from exchange.errors import Gone, NotFound
from exchange.fhir.interactions.result import Result
from exchange.fhir.validate import check_resource_type
from exchange.kernel.exchange import Exchange
from exchange.store.values import StoredResource
from exchange.kernel.unit import Event, Unit, open_unit


async def read_in(unit: Unit, resource_type: str, resource_id: str) -> StoredResource:
    policy = unit.exchange.access_policy
    policy.check_permission(unit.ctx, resource_type, "r")
    stored = await unit.repo.read(resource_type, resource_id, unit.access)
    if stored is None:
        raise NotFound(f"{resource_type}/{resource_id} is not known", expression=f"{resource_type}.id")
    if stored.deleted:
        raise Gone(f"{resource_type}/{resource_id} was deleted", expression=f"{resource_type}.id",
                   headers={"ETag": stored.etag})
    [stored] = await policy.shown(unit, [stored])
    unit.record(Event("read", "R", resource_type, resource_id, stored.version_id, stored=stored))
    return stored


async def read(exchange: Exchange, ctx: RequestContext, resource_type: str, resource_id: str) -> Result:
    check_resource_type(resource_type, resource_id)
    async with open_unit(exchange, ctx, "read", resource_type, resource_id, read_only=True) as unit:
        stored = await read_in(unit, resource_type, resource_id)
    return Result(200, stored=stored)


async def vread(exchange: Exchange, ctx: RequestContext, resource_type: str, resource_id: str, version: str
                ) -> Result:
    check_resource_type(resource_type, resource_id)
    async with open_unit(exchange, ctx, "vread", resource_type, resource_id, read_only=True) as unit:
        policy = exchange.access_policy
        policy.check_permission(ctx, resource_type, "r")
        stored = None
        if version.isascii() and version.isdigit() and len(version) <= 9:
            stored = await unit.repo.vread(resource_type, resource_id, int(version), unit.access)
        if stored is None:
            raise NotFound(f"{resource_type}/{resource_id} has no such version",
                           expression=f"{resource_type}.meta.versionId")
        if stored.deleted:
            raise Gone(f"{resource_type}/{resource_id} version {stored.version_id} is a deletion",
                       expression=f"{resource_type}.meta.versionId")
        [stored] = await policy.shown(unit, [stored])
        unit.record(Event("vread", "R", resource_type, resource_id, stored.version_id, stored=stored))
    return Result(200, stored=stored)
