"""After a change of a request's performers (a claim's narrowing included): parties follow the current lists.

`follow_performers` asks to remove (`Unshare`) the `resource_party` rows of every organisation that is no longer
the request's requester, a performer or the owner of one of its Tasks: from the request and its Tasks (an owned Task:
requester and owner only), and from the Patient and the Consents and documents in `supportingInfo` unless another
referral of the same Patient still shares them with it (`shared_elsewhere`). An organisation that owns a claimed
Task of the request keeps that Task and the request even when the requester drops it from `performer`: it is working
on the referral and must still read and close it. The organisation holding a Consent never loses it.
"""
from __future__ import annotations

from exchange.fhir.references import references_in, split_reference
from exchange.kernel.change import Unshare
from exchange.need_to_know.organisations import organisations_in
from exchange.need_to_know.parties import pointed_at
from exchange.store.repository import Repository


async def shared_elsewhere(repo: Repository, patient_id: str, request_id: str, orgs: set[str]
                           ) -> dict[tuple[str, str], set[str]]:
    """Which of `orgs` still hold, through another ServiceRequest of the Patient, the Patient itself
    (key ("Patient", id)) and each Consent or DocumentReference that request points at."""
    out: dict[tuple[str, str], set[str]] = {}
    ids = [i for i in await repo.referring_ids("ServiceRequest", "patient", [("Patient", patient_id)])
           if i != request_id]
    for other in await repo.read_many([("ServiceRequest", i) for i in ids]):
        holders = await repo.parties("ServiceRequest", other.id) & orgs
        if not holders:
            continue
        out.setdefault(("Patient", patient_id), set()).update(holders)
        for rtype in ("Consent", "DocumentReference"):
            for rid in pointed_at(other.resource, rtype):
                out.setdefault((rtype, rid), set()).update(holders)
    return out


def _unshare(resource_type: str, resource_id: str, orgs: set[str]) -> list[Unshare]:
    return [Unshare(resource_type, resource_id, frozenset(orgs))] if orgs else []


async def follow_performers(repo: Repository, request_id: str) -> list[Unshare]:
    """The parties of a ServiceRequest (and of what it shares) that its current lists no longer name."""
    request = await repo.read("ServiceRequest", request_id)
    if request is None or request.deleted:
        return []
    body = request.resource
    requesters = await organisations_in(repo, body.get("requester"))
    performers = await organisations_in(repo, body.get("performer"))
    task_ids = await repo.referring_ids("Task", "focus", [("ServiceRequest", request_id)])
    owners_of_any: set[str] = set()
    task_cuts: list[tuple[str, set[str]]] = []
    for task in await repo.read_many([("Task", i) for i in task_ids]):
        owners = await organisations_in(repo, task.resource.get("owner"))
        owners_of_any |= owners
        keep_task = requesters | owners | (set() if owners else performers)
        task_cuts.append((task.id, await repo.parties("Task", task.id) - keep_task))
    keep = requesters | performers | owners_of_any
    lost = await repo.parties("ServiceRequest", request_id) - keep
    gone = (lost | set().union(*(cut for _, cut in task_cuts))) - keep
    out: list[Unshare] = []
    for task_id, cut in task_cuts:
        out += _unshare("Task", task_id, cut)
    out += _unshare("ServiceRequest", request_id, lost)
    if not gone:
        return out
    await repo.read_many([split for split in map(split_reference, [*references_in(body.get("subject")),
                                                                    *references_in(body.get("supportingInfo"))])
                          if split])  # what the next steps (and withdrawal) read, in one statement
    for ref in references_in(body.get("subject")):
        split = split_reference(ref)
        if not split or split[0] != "Patient":
            continue
        elsewhere = await shared_elsewhere(repo, split[1], request_id, gone)
        out += _unshare("Patient", split[1], gone - elsewhere.get(("Patient", split[1]), set()))
        for rtype in ("Consent", "DocumentReference"):
            for rid in pointed_at(body, rtype):
                out += _unshare(rtype, rid, gone - elsewhere.get((rtype, rid), set())
                                - await _custodians(repo, rtype, rid))
    return out


async def _custodians(repo: Repository, resource_type: str, resource_id: str) -> set[str]:
    """The organisation holding a Consent (Consent.organization) never loses it."""
    if resource_type != "Consent":
        return set()
    found = await repo.read(resource_type, resource_id)
    return await organisations_in(repo, found.resource.get("organization")) if found and not found.deleted else set()
