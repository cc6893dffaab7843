"""Who is a party: the element table, and whether an organisation is a party of a resource now.

The table is the one list of the elements that decide need to know: the writer's `assign.py` records parties from
it, the write path asks `parties_changed` whether an update touched it, and the claim and performer rules
(`rules.py`) follow its ServiceRequest elements. The party rows themselves live in the store (`resource_party`),
read with `Repository.parties`.
"""
from __future__ import annotations

from typing import Mapping

from exchange.fhir.references import references_in, split_reference
from exchange.store.repository import Repository

# For each referral type: which elements name its parties, and which referenced resources share them.
PARTY_ELEMENTS = {"Task": ("requester", "owner"), "ServiceRequest": ("requester", "performer")}
SHARED_ELEMENTS = {"Task": ("focus", "for"), "ServiceRequest": ("subject", "supportingInfo")}
SHAREABLE = frozenset({"ServiceRequest", "Patient", "Consent", "DocumentReference"})  # what a referral shares


def parties_changed(resource_type: str, old: Mapping, new: Mapping) -> bool:
    """Whether an update changes an element that `assign.assign_parties` reads (else it has nothing new to record:
    the writer of an update can already see what it updates, and the targets were shared when the element was
    set)."""
    return any(old.get(e) != new.get(e)
               for e in (*PARTY_ELEMENTS.get(resource_type, ()), *SHARED_ELEMENTS.get(resource_type, ())))


def pointed_at(body: Mapping, resource_type: str) -> list[str]:
    """Ids of the `resource_type` resources a ServiceRequest's supportingInfo names."""
    out = []
    for ref in references_in(body.get("supportingInfo")):
        split = split_reference(ref)
        if split and split[0] == resource_type:
            out.append(split[1])
    return out


async def is_party(repo: Repository, organization_id: str | None, resource_type: str, resource_id: str) -> bool:
    """Whether `organization_id` is a party of the resource now (None: the exchange itself, party of everything).
    The notifier asks it before it sends or replays an event about the resource."""
    return organization_id is None or organization_id in await repo.parties(resource_type, resource_id)
