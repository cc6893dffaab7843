"""Who may do what: the roles, the permission check and the write rule about who is writing.

Three layers here, need to know beside them:
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
- **Need to know** is not here but in its own package, `exchange.need_to_know`: a referral resource is visible to an
  organisation only while a `resource_party` row names it (the store filter, `need_to_know.visibility`), the rows a
  write records (`need_to_know.assign`), and how they follow a claim, a dropped performer or a withdrawn consent.
  The exchange's access policy (`exchange.auth.policy`) hands its filter and its write step to the kernel beside the
  permission check below.
- **Write rules** (`AccessRule`, a WriteRule): a partner creates only referrals whose requester is its own
  organisation (403 `Task.requester` / `ServiceRequest.requester` otherwise: the caller is refused an action, nothing
  about another organisation's data is revealed), and updates only its own organisation's HealthcareService.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from exchange.auth.roles import ADMIN, AUDITOR, COORDINATOR, PARTNER, ROLES  # noqa: F401 - ROLES re-exported
from exchange.context import RequestContext
from exchange.errors import Forbidden
from exchange.fhir.references import references_in
from exchange.need_to_know.kinds import DIRECTORY_TYPES
from exchange.need_to_know.organisations import organisations_of

if TYPE_CHECKING:
    from exchange.kernel.change import Change, Reads

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
