"""The organisations behind references: a party is an organisation, but a referral may name it through its
HealthcareService or a PractitionerRole. Every rule that asks "which organisation is this" (parties, the requester
check, routing, consent, the notifier's filters, the web inbox) asks here."""
from __future__ import annotations

from typing import Iterable

from exchange.fhir.references import references_in, split_reference
from exchange.store.repository import Repository

ENTRIES = ("HealthcareService", "PractitionerRole")  # the directory entries that name an organisation


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
        elif rtype in ENTRIES:
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
