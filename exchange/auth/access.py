"""Who may see and do what: the one module that holds the access rules.

Visibility is "need to know": a referral resource is visible to an organisation only when a `resource_party` row
names it; the store applies that filter inside every query. The rows are written here, when a resource is stored:
the sender and the receiver of a Task or ServiceRequest become parties of it and of what it points at (the
Patient, the ServiceRequest, the Consent and documents in `supportingInfo`).
"""
from __future__ import annotations

from typing import Iterable

from exchange.context import RequestContext
from exchange.store.repository import AccessFilter, Repository, UNRESTRICTED

DIRECTORY_TYPES = frozenset({"Organization", "HealthcareService", "Location", "Practitioner", "PractitionerRole"})
REFERRAL_TYPES = frozenset({"ServiceRequest", "Task", "Patient", "Consent", "DocumentReference", "Procedure"})


def access_filter(ctx: RequestContext) -> AccessFilter:
    """The store filter for `ctx`: the exchange itself sees everything, an organisation its parties' rows."""
    if ctx.is_system or ctx.organization_id is None:
        return UNRESTRICTED
    return AccessFilter(organization_id=ctx.organization_id, types_without_filter=DIRECTORY_TYPES)


def _references(value) -> Iterable[str]:  # noqa: ANN001
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("reference"), str):
            yield item["reference"]


def _split(reference: str) -> tuple[str, str] | None:
    parts = reference.split("/")
    if len(parts) < 2 or reference.startswith(("#", "urn:")):
        return None
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-2], parts[-1]


async def organisations_of(repo: Repository, references: Iterable[str]) -> set[str]:
    """Organisation ids behind references to an Organization, HealthcareService or PractitionerRole."""
    orgs: set[str] = set()
    for reference in references:
        target = _split(reference)
        if target is None:
            continue
        rtype, rid = target
        if rtype == "Organization":
            orgs.add(rid)
        elif rtype in ("HealthcareService", "PractitionerRole"):
            found = await repo.read(rtype, rid)
            if found and not found.deleted:
                body = found.resource
                owner = body.get("providedBy") if rtype == "HealthcareService" else body.get("organization")
                for ref in _references(owner):
                    split = _split(ref)
                    if split and split[0] == "Organization":
                        orgs.add(split[1])
    return orgs


# For each referral type: which elements name its parties, and which referenced resources share them.
_PARTY_ELEMENTS = {"Task": ("requester", "owner"), "ServiceRequest": ("requester", "performer")}
_SHARED_ELEMENTS = {"Task": ("focus", "for"), "ServiceRequest": ("subject", "supportingInfo")}
_SHAREABLE = frozenset({"ServiceRequest", "Patient", "Consent", "DocumentReference"})


async def assign_parties(repo: Repository, ctx: RequestContext, resource_type: str, resource_id: str,
                         body: dict) -> None:
    """Record who may see this resource (and what it points at) after it is written."""
    if resource_type not in REFERRAL_TYPES:
        return
    parties: set[str] = {ctx.organization_id} if ctx.organization_id else set()
    for element in _PARTY_ELEMENTS.get(resource_type, ()):
        parties |= await organisations_of(repo, _references(body.get(element)))
    await repo.add_parties(resource_type, resource_id, parties)
    if resource_type not in _SHARED_ELEMENTS:
        return
    all_parties = await repo.parties(resource_type, resource_id)
    for element in _SHARED_ELEMENTS[resource_type]:
        for reference in _references(body.get(element)):
            target = _split(reference)
            if target and target[0] in _SHAREABLE:
                await repo.add_parties(target[0], target[1], all_parties)
                if target[0] == "ServiceRequest":  # a Task's parties reach the survivor behind its request too
                    request = await repo.read(*target)
                    if request and not request.deleted:
                        for ref in _references(request.resource.get("subject")):
                            subject = _split(ref)
                            if subject:
                                await repo.add_parties(subject[0], subject[1], all_parties)


def check_permission(ctx: RequestContext, resource_type: str, operation: str) -> None:
    """Raise Forbidden unless `ctx`'s scopes and role allow `operation` (c r u d s) on `resource_type`.

    The system context (CLI, loopback development server before OAuth) holds every permission.
    """
    if ctx.is_system:
        return
    from exchange.auth.scopes import require_scope

    require_scope(ctx, resource_type, operation)


def may(ctx: RequestContext, resource_type: str, operation: str) -> bool:
    """Whether `check_permission` would pass (used to drop _include results the caller may not read)."""
    if ctx.is_system:
        return True
    from exchange.auth.scopes import allows

    return allows(ctx.scopes, resource_type, operation)
