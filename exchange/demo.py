"""Demo organisations of each kind, so `make run` starts with a directory a partner can use."""
from __future__ import annotations

from exchange.context import system_context
from exchange.fhir.interactions import create
from exchange.referral import codes
from exchange.services import Exchange

ORG_TYPE_SYSTEM = f"{codes.BASE}/CodeSystem/organization-kind"
DEMO_ID_SYSTEM = "https://gbv-exchange.org/fhir/sid/organization"

# The published CodeSystem (conformance/CodeSystem-organization-kind.json) is the one list of kinds.
ORG_KINDS = {c["code"]: c["display"] for c in codes.load("CodeSystem", "organization-kind")["concept"]}

DEMO_ORGS = (
    ("hotline", "hotline-1", "Amal National GBV Hotline", "الخط الساخن الوطني أمل"),
    ("shelter", "shelter-1", "Safe Haven Women's Shelter", "دار الأمان للنساء"),
    ("clinic", "clinic-1", "Al-Noor One-Stop Crisis Clinic", "عيادة النور للأزمات"),
    ("legal-aid", "legal-1", "Justice for Women Legal Aid", "العدالة للمرأة للمساعدة القانونية"),
    ("counselling", "counselling-1", "Sakina Psychosocial Counselling", "سكينة للدعم النفسي الاجتماعي"),
    ("livelihood", "livelihood-1", "Tamkeen Livelihood NGO", "تمكين لسبل العيش"),
)


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


async def load_demo(exchange: Exchange) -> dict[str, str]:
    """Create the demo organisations, their services and the referral story once; return {demo key: Organization
    id}. On a new database each organisation's id is its demo key (`Organization/shelter-1`), so commands and
    examples can name it; a database from before stable ids keeps the ids it has."""
    ctx = system_context()
    loaded: dict[str, str] = {}
    for kind, key, name, alias in DEMO_ORGS:
        body = organization_resource(name, kind, f"{DEMO_ID_SYSTEM}|{key}", alias)
        result = await create.create(exchange, ctx, "Organization", body, f"identifier={DEMO_ID_SYSTEM}|{key}",
                                     resource_id=key)
        loaded[key] = result.stored.id
    from exchange.referral.demo import load_story

    await load_story(exchange, loaded)  # directory entries and the referral story (idempotent)
    return loaded
