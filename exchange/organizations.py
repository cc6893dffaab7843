"""The organisations the exchange itself puts in the directory (`exchange orgs add`, the demo): the kinds of
organisation, an Organization resource of one kind, and its creation (found again by identifier)."""
from __future__ import annotations

from exchange.context import system_context
from exchange.fhir.interactions import create
from exchange.referral import codes
from exchange.kernel.exchange import Exchange

ORG_TYPE_SYSTEM = f"{codes.BASE}/CodeSystem/organization-kind"

# The published CodeSystem (conformance/CodeSystem-organization-kind.json) is the one list of kinds.
ORG_KINDS = {c["code"]: c["display"] for c in codes.load("CodeSystem", "organization-kind")["concept"]}


def organization_resource(name: str, kind: str, identifier: str | None = None, alias: str | None = None) -> dict:
    if kind not in ORG_KINDS:
        raise ValueError(f"unknown organisation type '{kind}' (one of {', '.join(ORG_KINDS)})")
    body: dict = {"resourceType": "Organization", "active": True, "name": name,
                  "type": [{"coding": [{"system": ORG_TYPE_SYSTEM, "code": kind, "display": ORG_KINDS[kind]}]}]}
    if alias:
        body["alias"] = [alias]
    if identifier:
        system, _, value = identifier.rpartition("|")
        body["identifier"] = [{"system": system, "value": value} if system else {"value": value}]
    return body


async def add_organization(exchange: Exchange, body: dict, resource_id: str | None = None) -> str:
    """Create (or find, by identifier) an Organization and return its id (`resource_id`: a stable id of its own)."""
    condition = None
    for ident in body.get("identifier") or []:
        condition = f"identifier={ident.get('system', '')}|{ident['value']}"
        break
    result = await create.create(exchange, system_context(), "Organization", body, condition, resource_id)
    return result.stored.id
