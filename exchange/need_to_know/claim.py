"""After a claim: the request names only the claimant, and the others lose the referral.

An open referral (Task without owner) is shared with every provider its ServiceRequest names, so that one of them can
claim it. Once one has, `narrow_on_claim` asks for the request's `performer` to be rewritten to the claimant's own
entries (its Organization or its HealthcareService, as the requester wrote them): an `Update` follow-up, which the
kernel writes as the exchange itself (versioned, notified, and audited as the exchange, linked to the claim by its
request id). That request write then runs `performers.follow_performers`, which removes the others' access; when the
performer list is already the claimant's alone, it runs here at once.
"""
from __future__ import annotations

from exchange.fhir.references import references_in, split_reference
from exchange.kernel.change import Change, FollowUp, Reads, Update
from exchange.need_to_know.organisations import organisations_in
from exchange.need_to_know.performers import follow_performers


async def narrow_on_claim(change: Change, reads: Reads) -> list[FollowUp]:
    """After an open Task is claimed: the request names only the claimant, the others lose the referral."""
    task = change.after
    if change.before.get("owner") or not task.get("owner"):
        return []
    repo = reads.repo
    owners = await organisations_in(repo, task.get("owner"))
    out: list[FollowUp] = []
    for ref in references_in(task.get("focus")):
        split = split_reference(ref)
        if not split or split[0] != "ServiceRequest":
            continue
        request = await repo.read(*split)
        if request is None or request.deleted:
            continue
        performers = request.resource.get("performer") or []
        kept = [p for p in performers if await organisations_in(repo, p) & owners]
        if kept and kept != performers:  # the request's own follow-up runs follow_performers
            out.append(Update(request, dict(request.resource, performer=kept), "need to know after a claim"))
        else:
            out.extend(await follow_performers(repo, request.id))
    return out
