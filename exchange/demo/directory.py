"""Demo organisations of each kind, so `make run` starts with a directory a partner can use."""
from __future__ import annotations

from exchange.context import system_context
from exchange.fhir.interactions import create
from exchange.demo.story import load_story
from exchange.organizations import organization_resource
from exchange.kernel.exchange import Exchange

DEMO_ID_SYSTEM = "https://gbv-exchange.org/fhir/sid/organization"

DEMO_ORGS = (
    ("hotline", "hotline-1", "Amal National GBV Hotline", "الخط الساخن الوطني أمل"),
    ("shelter", "shelter-1", "Safe Haven Women's Shelter", "دار الأمان للنساء"),
    ("clinic", "clinic-1", "Al-Noor One-Stop Crisis Clinic", "عيادة النور للأزمات"),
    ("legal-aid", "legal-1", "Justice for Women Legal Aid", "العدالة للمرأة للمساعدة القانونية"),
    ("counselling", "counselling-1", "Sakina Psychosocial Counselling", "سكينة للدعم النفسي الاجتماعي"),
    ("livelihood", "livelihood-1", "Tamkeen Livelihood NGO", "تمكين لسبل العيش"),
)


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
    await load_story(exchange, loaded)  # directory entries and the referral story (idempotent)
    return loaded
