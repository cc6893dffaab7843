"""The write-authority table (`authority.TABLE`) applied on the write path: works out the writer's roles towards the
resource and asks `authority.check`; refuses deleting what an open referral points at.

Registered before the referral rules, so a party that may not change a resource learns nothing about its content
rules. The exchange itself (system context) is not held to the table.
"""
from __future__ import annotations

from exchange.auth.access import DIRECTORY_OWNER
from exchange.need_to_know.kinds import DIRECTORY_TYPES
from exchange.need_to_know.organisations import organisations_in
from exchange.fhir.references import all_references, references_in, split_reference
from exchange.referral import authority, task_states
from exchange.referral.consent import subject_id
from exchange.referral.rules import REQUEST_OPEN
from exchange.store.repository import Repository
from exchange.store.values import StoredResource
from exchange.kernel.change import Change, Reads

async def roles_of(repo: Repository, org: str | None, resource_type: str, resource_id: str | None,
                   body: dict) -> set[str]:
    """The roles of `org` towards a resource (`body` its current version; on a create, the new one)."""
    if not org:
        return set()
    roles: set[str] = set()
    if resource_id is None or await repo.recorder(resource_type, resource_id) == org:
        roles.add(authority.RECORDER)
    if resource_type in ("ServiceRequest", "Task") and org in await organisations_in(repo, body.get("requester")):
        roles.add(authority.REQUESTER)
    if resource_type == "Task":
        if org in await organisations_in(repo, body.get("owner")):
            roles.add(authority.OWNER)
        elif not body.get("owner") and org in await _task_performers(repo, body):
            roles.add(authority.PERFORMER)
    elif resource_type == "ServiceRequest" and org in await organisations_in(repo, body.get("performer")):
        roles.add(authority.PERFORMER)
    elif resource_type in DIRECTORY_OWNER and org in await organisations_in(repo,
                                                                          body.get(DIRECTORY_OWNER[resource_type])):
        roles.add(authority.PROVIDER)
    return roles


async def _task_performers(repo: Repository, task: dict) -> set[str]:
    for ref in references_in(task.get("focus")):
        split = split_reference(ref)
        if split and split[0] == "ServiceRequest":
            request = await repo.read(*split)
            if request is not None and not request.deleted:
                return await organisations_in(repo, request.resource.get("performer"))
    return set()


async def pointed_at_by_open_referral(repo: Repository, current: StoredResource) -> bool:
    """Whether an open referral of her (a ServiceRequest draft/active/on-hold, or an open Task) references it."""
    patient = current.id if current.resource_type == "Patient" else subject_id(current.resource)
    if not patient:
        return False
    target = current.reference
    requests = await repo.read_many([("ServiceRequest", i) for i in await repo.referring_ids(
        "ServiceRequest", "patient", [("Patient", patient)])])
    tasks = await repo.read_many([("Task", i) for i in await repo.referring_ids("Task", "patient", [("Patient", patient)])])
    for stored, open_states in [(r, REQUEST_OPEN) for r in requests] + [(t, task_states.OPEN_STATES) for t in tasks]:
        if stored.resource.get("status") in open_states and target in _normalised(all_references(stored.resource)):
            return True
    return False


async def _own_links(repo: Repository, org: str | None, resource_type: str, before: dict, after: dict) -> None:
    """New references in the table's `own_links` elements must be to records `org` made (its own outputs)."""
    for element in authority.TABLE[resource_type].own_links:
        added = _normalised(all_references(after.get(element))) - _normalised(all_references(before.get(element)))
        for reference in sorted(added):
            rtype, _, rid = reference.partition("/")
            if not org or await repo.recorder(rtype, rid) != org:
                raise authority.not_own(resource_type, element)


def _normalised(references: set[str]) -> set[str]:
    return {"/".join(split) for split in map(split_reference, references) if split}


class AuthorityRule:
    async def check(self, change: Change, reads: Reads) -> None:
        ctx = change.who
        if ctx.is_system or change.resource_type not in authority.TABLE:
            return
        if ctx.role == "admin" and change.resource_type in DIRECTORY_TYPES:
            return  # the directory's admins manage every entry (`exchange.auth.access.role_allows`)
        repo = reads.repo
        current = change.current
        roles = await roles_of(repo, ctx.organization_id, change.resource_type,
                               current.id if current is not None else None,
                               change.before if change.before is not None else change.after)
        authority.check(change.resource_type, roles, change.before, change.after)
        if change.after is not None:
            await _own_links(repo, ctx.organization_id, change.resource_type, change.before or {}, change.after)
        if change.deleted and await pointed_at_by_open_referral(repo, current):
            raise authority.in_use(change.resource_type)
