"""The parties a withdrawn consent removes, at once: every read, search and include of the receiver stops.

`exchange.referral.withdrawal.enforce` decides, from her Consents, which receiving organisations of each of her
referrals are no longer covered (`cut`) and which parties each consent-governed referral keeps (`keeps`: its
requesters and the receivers still covered), and settles the Tasks; this module turns that into the `Unshare`s:
- the ServiceRequest, for the organisations cut from it;
- the documents and Consents it points at, unless another of her referrals still keeps the organisation;
- the candidates dropped from an open Task (`task_removals`);
- the Patient, for the organisations no referral of hers keeps.
They come after the Task changes, because a Task write re-shares the Task's parties with what it points at.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from exchange.kernel.change import Unshare
from exchange.need_to_know.parties import pointed_at
from exchange.store.values import StoredResource

_POINTED_AT = ("DocumentReference", "Consent")  # what a referral shares of her besides the Patient


def unshare_withdrawn(patient_id: str, requests: Iterable[StoredResource], keeps: Mapping[str, set[str]],
                      cut: Mapping[str, set[str]], task_removals: Iterable[tuple[str, set[str]]]) -> list[Unshare]:
    """The party removals of a withdrawal (none empty), in the order the kernel applies them."""
    requests = list(requests)
    allowed: dict[tuple[str, str], set[str]] = {}  # (type, id) of documents/consents -> orgs that keep them
    for request in requests:
        if request.id in keeps:
            for rtype in _POINTED_AT:
                for rid in pointed_at(request.resource, rtype):
                    allowed.setdefault((rtype, rid), set()).update(keeps[request.id])
    out: list[Unshare] = []
    for request in requests:
        orgs = cut.get(request.id)
        if not orgs:
            continue
        out.append(Unshare("ServiceRequest", request.id, frozenset(orgs)))
        for rtype in _POINTED_AT:
            for rid in pointed_at(request.resource, rtype):
                out.append(Unshare(rtype, rid, frozenset(orgs - allowed.get((rtype, rid), set()))))
    for task_id, orgs in task_removals:
        out.append(Unshare("Task", task_id, frozenset(orgs)))
    kept = set().union(*keeps.values())
    lost = set().union(*cut.values()) - kept
    out.append(Unshare("Patient", patient_id, frozenset(lost)))
    return [item for item in out if item.organizations]
