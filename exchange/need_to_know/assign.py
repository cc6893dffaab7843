"""The parties a write records: who may see a referral resource, and what it points at, from now on.

When a resource is stored, the writer's organisation and the organisations its party elements name (the sender and
the receiver of a Task or ServiceRequest: `parties.PARTY_ELEMENTS`) become parties of it and of what it points at
(`parties.SHARED_ELEMENTS`: the Patient, the ServiceRequest, the Consent and documents in `supportingInfo`) - but
only of what the writer may see itself, so pointing a new Task at someone else's ServiceRequest shares nothing. The
performers named on a Task's ServiceRequest are parties of an open Task (no owner yet) too, so it reaches the
providers it names; once one claims it, `claim.py` and `performers.py` remove the others (parties follow the current
performer and owner lists), and this module, reading only the current lists, never brings them back.
"""
from __future__ import annotations

from exchange.context import RequestContext
from exchange.fhir.references import references_in, split_reference
from exchange.need_to_know import visibility
from exchange.need_to_know.kinds import REFERRAL_TYPES
from exchange.need_to_know.organisations import organisations_of
from exchange.need_to_know.parties import PARTY_ELEMENTS, SHAREABLE, SHARED_ELEMENTS
from exchange.store.repository import Repository
from exchange.store.visibility import AccessFilter


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
    for element in PARTY_ELEMENTS.get(resource_type, ()):
        parties |= await organisations_of(repo, references_in(body.get(element)))
    access = visibility.access_filter(ctx)
    if resource_type == "Task" and not body.get("owner"):  # an open referral: its request's performers may claim it
        for reference in references_in(body.get("focus")):
            target = split_reference(reference)
            if target and target[0] == "ServiceRequest" and await _may_share(repo, access, *target):
                request = await repo.read(*target)
                if request is not None and not request.deleted:
                    parties |= await organisations_of(repo, references_in(request.resource.get("performer")))
    if previous is not None and all(previous.get(e) == body.get(e) for e in SHARED_ELEMENTS.get(resource_type, ())) \
            and parties <= await repo.parties(resource_type, resource_id):
        return
    await repo.add_parties(resource_type, resource_id, parties)
    if resource_type not in SHARED_ELEMENTS:
        return
    all_parties = await repo.parties(resource_type, resource_id)
    for element in SHARED_ELEMENTS[resource_type]:
        for reference in references_in(body.get(element)):
            target = split_reference(reference)
            if not target or target[0] not in SHAREABLE or not await _may_share(repo, access, *target):
                continue
            await repo.add_parties(target[0], target[1], all_parties)
            if target[0] == "ServiceRequest":  # a Task's parties reach the survivor behind its request too
                request = await repo.read(*target)
                if request and not request.deleted:
                    for ref in references_in(request.resource.get("subject")):
                        subject = split_reference(ref)
                        if subject and await _may_share(repo, access, *subject):
                            await repo.add_parties(subject[0], subject[1], all_parties)
