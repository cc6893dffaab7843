"""Who may see and do what: the one module that holds the access rules.

Three layers, all here:
- **Roles** (`role_allows`): a `partner` works with referrals and reads the directory (and updates the
  HealthcareService entries of its own organisation, so a shelter can say it has room) and the AuditEvents about
  its own referrals (the audit log filters them, `exchange.audit.review`); an `auditor` reads
  AuditEvents and the directory, nothing clinical; an `admin` manages the directory (Organization,
  HealthcareService, Location, Practitioner, PractitionerRole) and no referral content; a `coordinator` (the
  deployment's coordinating organisation) reads the directory and, outside FHIR, what `exchange.referral` shows it
  of escalated referrals, never a referral resource. The roles are defined once, in `exchange.auth.roles`. Clients themselves are
  managed with the CLI (`exchange clients`) or by an admin over HTTP, where a registration or re-key waits for a
  second admin or the CLI (`exchange.auth.clients`), so no admin can hand itself a partner's credentials. The system context (CLI, demo loader, dispatcher) is unrestricted and
  never reachable over HTTP.
- **Scopes** (`exchange.auth.scopes`): each interaction needs the matching SMART v2 permission (c r u d s).
  `check_permission` applies both and answers 403 with an OperationOutcome.
- **Need to know** (`access_filter`, `assign_parties`): a referral resource is visible to an organisation only when a
  `resource_party` row names it; the store applies that filter inside every query, so for anyone else it does not
  exist (404, absent from search, `_include`, `_revinclude` and `_history`). The rows are written when a resource is
  stored: the sender and the receiver of a Task or ServiceRequest become parties of it and of what it points at (the
  Patient, the ServiceRequest, the Consent and documents in `supportingInfo`) - but only of what the writer may see
  itself, so pointing a new Task at someone else's ServiceRequest shares nothing. The performers named on a Task's
  ServiceRequest are parties of an open Task (no owner yet) too, so it reaches the providers it names; once one claims
  it, `exchange.referral.need_to_know` removes the others (parties follow the current performer and owner lists).
- **Write rules** (`AccessRule`, a WriteRule): a partner creates only referrals whose requester is its own
  organisation (403 `Task.requester` / `ServiceRequest.requester` otherwise: the caller is refused an action, nothing
  about another organisation's data is revealed), and updates only its own organisation's HealthcareService.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from exchange.auth.roles import ADMIN, AUDITOR, COORDINATOR, PARTNER, ROLES  # noqa: F401 - ROLES re-exported
from exchange.context import RequestContext
from exchange.fhir.references import references_in, split_reference
from exchange.errors import Forbidden
from exchange.store.repository import Repository
from exchange.store.values import StoredResource
from exchange.store.visibility import UNRESTRICTED, AccessFilter

if TYPE_CHECKING:
    from exchange.kernel.change import Change, Reads

DIRECTORY_TYPES = frozenset({"Organization", "HealthcareService", "Location", "Practitioner", "PractitionerRole"})
REFERRAL_TYPES = frozenset({"ServiceRequest", "Task", "Patient", "Consent", "DocumentReference", "Procedure"})
AUDIT_TYPES = frozenset({"AuditEvent"})
# The directory entries a partner updates when they are its own, and the element that says whose they are
# (exchange.referral.authority: directory-provider; exchange.auth.confidential: who sees a confidential entry whole).
DIRECTORY_OWNER = {"HealthcareService": "providedBy", "Location": "managingOrganization"}
STATS_TYPES = frozenset({"MeasureReport"})  # statistics (exchange.stats): computed, never stored or written
STATS_ROLES = frozenset({AUDITOR, COORDINATOR})
_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def role_allows(role: str, resource_type: str, operation: str) -> bool:
    """Whether a client of `role` may perform `operation` (c r u d s) on `resource_type` at all."""
    if role == "system":
        return True
    if resource_type in STATS_TYPES:
        return role in STATS_ROLES and operation in "rs"
    if role == PARTNER:
        if resource_type in AUDIT_TYPES:  # only the events about its own referrals (exchange.audit.review)
            return operation in "rs"
        if resource_type in DIRECTORY_TYPES:
            return operation in "rs" or (resource_type in DIRECTORY_OWNER and operation == "u")
        return True  # referral resources and the exchange's own (e.g. Subscription)
    if role == AUDITOR:
        return operation in "rs" and (resource_type in AUDIT_TYPES or resource_type in DIRECTORY_TYPES)
    if role == COORDINATOR:  # escalated referrals only through exchange.referral.coordination, never her records
        return operation in "rs" and resource_type in DIRECTORY_TYPES
    if role == ADMIN:
        return resource_type in DIRECTORY_TYPES
    return False


def require_role(ctx: RequestContext, *roles: str) -> None:
    """Raise Forbidden unless the caller has one of `roles` (the system context always passes)."""
    if ctx.is_system or ctx.role in roles:
        return
    raise Forbidden(f"This needs a client with role {' or '.join(roles)}; this client's role is {ctx.role}")


def access_filter(ctx: RequestContext) -> AccessFilter:
    """The store filter for `ctx`: the exchange itself sees everything, an organisation its parties' rows."""
    if ctx.is_system:
        return UNRESTRICTED
    # a client without an organisation (never registered so) sees no party-filtered row at all
    return AccessFilter(organization_id=ctx.organization_id or "", types_without_filter=DIRECTORY_TYPES)


async def organisations_of(repo: Repository, references: Iterable[str]) -> set[str]:
    """Organisation ids behind references to an Organization, HealthcareService or PractitionerRole."""
    orgs: set[str] = set()
    for reference in references:
        target = split_reference(reference)
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
                for ref in references_in(owner):
                    split = split_reference(ref)
                    if split and split[0] == "Organization":
                        orgs.add(split[1])
    return orgs


async def organisations_in(repo: Repository, value) -> set[str]:  # noqa: ANN001
    """Organisation ids behind the references of a Reference element or a list of them (a Task's owner, a
    ServiceRequest's performer ...)."""
    return await organisations_of(repo, references_in(value))


# For each referral type: which elements name its parties, and which referenced resources share them.
_PARTY_ELEMENTS = {"Task": ("requester", "owner"), "ServiceRequest": ("requester", "performer")}
_SHARED_ELEMENTS = {"Task": ("focus", "for"), "ServiceRequest": ("subject", "supportingInfo")}
_SHAREABLE = frozenset({"ServiceRequest", "Patient", "Consent", "DocumentReference"})


def parties_changed(resource_type: str, old: dict, new: dict) -> bool:
    """Whether an update changes an element that `assign_parties` reads (else it has nothing new to record: the
    writer of an update can already see what it updates, and the targets were shared when the element was set)."""
    return any(old.get(e) != new.get(e)
               for e in (*_PARTY_ELEMENTS.get(resource_type, ()), *_SHARED_ELEMENTS.get(resource_type, ())))


async def _may_share(repo: Repository, access: AccessFilter, resource_type: str, resource_id: str) -> bool:
    """A writer shares what it can see itself, or what does not exist yet (a later entry of its transaction:
    ids are always assigned by the server, so nobody else can create it); never another organisation's resource."""
    if not access.applies_to(resource_type):
        return True
    if await repo.read(resource_type, resource_id, access) is not None:
        return True
    return await repo.read(resource_type, resource_id) is None


async def assign_parties(repo: Repository, ctx: RequestContext, resource_type: str, resource_id: str,
                         body, previous=None) -> None:  # noqa: ANN001
    """Record who may see this resource (and what it points at) after it is written. On an update (`previous`, the
    version replaced) that points at the same resources and names nobody who is not a party already, there is
    nothing to record (what it points at was shared with its parties when they became parties)."""
    if resource_type not in REFERRAL_TYPES:
        return
    parties: set[str] = {ctx.organization_id} if ctx.organization_id else set()
    for element in _PARTY_ELEMENTS.get(resource_type, ()):
        parties |= await organisations_of(repo, references_in(body.get(element)))
    access = access_filter(ctx)
    if resource_type == "Task" and not body.get("owner"):  # an open referral: its request's performers may claim it
        for reference in references_in(body.get("focus")):
            target = split_reference(reference)
            if target and target[0] == "ServiceRequest" and await _may_share(repo, access, *target):
                request = await repo.read(*target)
                if request is not None and not request.deleted:
                    parties |= await organisations_of(repo, references_in(request.resource.get("performer")))
    if previous is not None and all(previous.get(e) == body.get(e) for e in _SHARED_ELEMENTS.get(resource_type, ())) \
            and parties <= await repo.parties(resource_type, resource_id):
        return
    await repo.add_parties(resource_type, resource_id, parties)
    if resource_type not in _SHARED_ELEMENTS:
        return
    all_parties = await repo.parties(resource_type, resource_id)
    for element in _SHARED_ELEMENTS[resource_type]:
        for reference in references_in(body.get(element)):
            target = split_reference(reference)
            if not target or target[0] not in _SHAREABLE or not await _may_share(repo, access, *target):
                continue
            await repo.add_parties(target[0], target[1], all_parties)
            if target[0] == "ServiceRequest":  # a Task's parties reach the survivor behind its request too
                request = await repo.read(*target)
                if request and not request.deleted:
                    for ref in references_in(request.resource.get("subject")):
                        subject = split_reference(ref)
                        if subject and await _may_share(repo, access, *subject):
                            await repo.add_parties(subject[0], subject[1], all_parties)


def check_permission(ctx: RequestContext, resource_type: str, operation: str) -> None:
    """Raise Forbidden unless `ctx`'s role and scopes allow `operation` (c r u d s) on `resource_type`.

    The system context (CLI, demo loader, dispatcher) holds every permission.
    """
    if ctx.is_system:
        return
    if not role_allows(ctx.role, resource_type, operation):
        raise Forbidden(f"A client with role {ctx.role} may not {_VERBS.get(operation, operation)} {resource_type}")
    from exchange.auth.scopes import require_scope

    require_scope(ctx, resource_type, operation)


def may(ctx: RequestContext, resource_type: str, operation: str) -> bool:
    """Whether `check_permission` would pass (used to drop _include results the caller may not read)."""
    if ctx.is_system:
        return True
    from exchange.auth.scopes import allows

    return role_allows(ctx.role, resource_type, operation) and allows(ctx.scopes, resource_type, operation)


def _reference_key(value) -> list[str]:  # noqa: ANN001
    return sorted(references_in(value))


class AccessRule:
    """The write rules that depend on who is writing (registered first among `exchange.rules`)."""

    async def check(self, change: "Change", reads: "Reads") -> None:
        ctx = change.who
        if ctx.is_system or ctx.role != "partner" or change.deleted:
            return
        body = change.after
        if change.resource_type in ("Task", "ServiceRequest"):
            if change.created or change.changed("requester") and _reference_key(body.get("requester")) != \
                    _reference_key(change.before.get("requester")):
                await self._own_requester(reads, ctx, change.resource_type, body)
        elif change.resource_type in DIRECTORY_OWNER and not change.created:
            element = DIRECTORY_OWNER[change.resource_type]
            for version, where in ((change.before, "the current entry"), (body, "the new entry")):
                orgs = await organisations_of(reads.repo, references_in(version.get(element)))
                if orgs != {ctx.organization_id}:
                    raise Forbidden(f"directory-provider: a partner updates only its own organisation's "
                                    f"{change.resource_type} entries "
                                    f"({where} does not name {ctx.organization_reference} in {element})",
                                    expression=f"{change.resource_type}.{element}")

    async def _own_requester(self, reads: "Reads", ctx: RequestContext, resource_type: str, body) -> None:  # noqa: ANN001
        refs = list(references_in(body.get("requester")))
        orgs = await organisations_of(reads.repo, refs)
        if not refs or orgs != {ctx.organization_id}:
            raise Forbidden(f"A partner creates only referrals whose requester is its own organisation "
                            f"({ctx.organization_reference})", expression=f"{resource_type}.requester")
