"""Need to know for the directory: a confidential shelter's whereabouts reach only those who need them.

A HealthcareService or Location carrying the `confidential` extension (conformance/StructureDefinition-
confidential.json) is shown whole only to
- the exchange itself and the directory's admins (they manage it);
- its own organisation (HealthcareService.providedBy, Location.managingOrganization);
- organisations party to a referral to it: a Task (owner) or ServiceRequest (performer) naming the service, its
  organisation, or (for a Location) a service at that Location, that the organisation may see.
Everyone else gets the entry without the elements of `HIDDEN` (its address keeps only the area: district, state,
country), labelled `REDACTED` in `meta.security`; the extension's intake contacts stay, so anyone can still reach
intake. Every interaction that returns a directory entry passes it through `shown` (read, vread, history, search,
_include, _revinclude, transactions, the web inbox); a search on a hidden element never matches a confidential
entry for them (`exchange.fhir.search_sql`, `definitions.CONFIDENTIAL_SEARCH_PARAMS`). Notifications never carry
directory entries (the topics are Task and ServiceRequest).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import orjson

from exchange.auth.access import DIRECTORY_OWNER
from exchange.need_to_know.organisations import organisations_of
from exchange.context import RequestContext
from exchange.fhir.definitions import CONFIDENTIAL_EXTENSION, CONFIDENTIAL_TYPES
from exchange.fhir.references import references_in
from exchange.store.repository import Repository
from exchange.store.values import StoredResource

if TYPE_CHECKING:
    from exchange.kernel.unit import Unit

# What a non-party does not see, per type (rules as data: the docs and the tests read this table).
HIDDEN: dict[str, tuple[str, ...]] = {
    "HealthcareService": ("telecom", "location", "photo", "endpoint", "extraDetails"),
    "Location": ("telecom", "position", "photo", "endpoint", "description"),
}
AREA_ADDRESS_PARTS = ("use", "type", "district", "state", "country")  # Location.address: the area, not the street
REDACTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "REDACTED",
            "display": "redacted"}


def is_confidential(body: dict) -> bool:
    return any(isinstance(e, dict) and e.get("url") == CONFIDENTIAL_EXTENSION for e in body.get("extension") or [])


def redacted(body: dict) -> dict:
    """The entry as a non-party sees it."""
    resource_type = body.get("resourceType")
    out = {k: v for k, v in body.items() if k not in HIDDEN.get(resource_type, ())}
    if resource_type == "Location" and isinstance(body.get("address"), dict):
        area = {k: v for k, v in body["address"].items() if k in AREA_ADDRESS_PARTS}
        if area:
            out["address"] = area
        else:
            out.pop("address", None)
    meta = dict(out.get("meta") or {})
    meta["security"] = [*(meta.get("security") or []), REDACTED]
    out["meta"] = meta
    return out


async def sees_details(repo: Repository, ctx: RequestContext, current: StoredResource) -> bool:
    """Whether `ctx` sees the whole of a confidential entry (its current version decides who its parties are)."""
    if ctx.is_system or ctx.role == "admin":
        return True
    org = ctx.organization_id
    if not org:
        return False
    body = current.resource
    owners = await organisations_of(repo, references_in(body.get(DIRECTORY_OWNER[current.resource_type])))
    if org in owners:
        return True
    targets = [("Organization", o) for o in sorted(owners)]
    if current.resource_type == "HealthcareService":
        targets.append(("HealthcareService", current.id))
    else:
        services = await repo.referring_ids("HealthcareService", "location", [("Location", current.id)])
        targets += [("HealthcareService", i) for i in services]
    return await repo.party_of_referral_to(org, targets)


def _replaced(stored: StoredResource) -> StoredResource:
    body = redacted(stored.resource)
    return StoredResource(stored.resource_type, stored.id, stored.version_id, stored.last_updated, stored.deleted,
                          orjson.dumps(body).decode(), body)


async def shown_all(unit: "Unit", found: Iterable[StoredResource]) -> list[StoredResource]:
    """`found` as the caller may see it: confidential directory entries redacted for non-parties. A version of an
    entry is redacted when it or the entry's current version is confidential (an address written before the
    entry was marked confidential is as secret as one written after)."""
    out: list[StoredResource] = []
    current: dict[tuple[str, str], StoredResource | None] = {}
    sees: dict[tuple[str, str], bool] = {}
    for stored in found:
        if stored.resource_type not in CONFIDENTIAL_TYPES or stored.deleted:
            out.append(stored)
            continue
        key = (stored.resource_type, stored.id)
        if key not in current:
            now = await unit.repo.read(*key)
            current[key] = now if now is not None and not now.deleted else None
        now = current[key]
        if not (is_confidential(stored.resource) or (now is not None and is_confidential(now.resource))):
            out.append(stored)
            continue
        if key not in sees:
            sees[key] = await sees_details(unit.repo, unit.ctx, now or stored)
        out.append(stored if sees[key] else _replaced(stored))
    return out


async def shown(unit: "Unit", stored: StoredResource) -> StoredResource:
    return (await shown_all(unit, [stored]))[0]
