"""Consent withdrawal takes effect at once: the receiver loses the survivor's data, her open referrals are cancelled.

`enforce(repo, patient_id)` recomputes, after a referral write that can change what her Consents cover (the rules
say which: `exchange.referral.rules`), which receiving organisations still hold an active Consent covering what
their referral discloses, and returns the follow-up changes for each that does not:
- its open Tasks move to `cancelled` (statusReason says consent was withdrawn) and its closed ones get
  businessStatus `consent-withdrawn` (`Update`s, written by the kernel as the exchange itself: versioned, audited,
  notified): the Task itself stays visible, so the receiver learns why it stopped;
- its `resource_party` rows for the ServiceRequest, the Patient (unless another referral still covers it), and the
  documents and Consents the referral points at go (`Unshare`: `exchange.need_to_know.withdrawal`), so every read,
  search and include stops at once.
The party removals come last because a Task write re-shares the Task's parties with what it points at. A Task
cancelled here changes none of the elements withdrawal depends on, so nothing follows from it.
"""
from __future__ import annotations

from exchange.errors import FhirError
from exchange.fhir.references import references_in
from exchange.kernel.change import FollowUp, Update
from exchange.need_to_know.organisations import organisations_of
from exchange.need_to_know.withdrawal import unshare_withdrawn
from exchange.referral import codes, consent, task_states
from exchange.store.repository import Repository
from exchange.store.values import StoredResource

WITHDRAWN_REASON = "Consent withdrawn by the survivor: the receiving organisation no longer has access to her data"


def withdrawn_reason() -> dict:
    """The cancelled Task's statusReason: consent-withdrawn (ValueSet gbv-cancel-reason) and why, in words."""
    return {"coding": [{"system": codes.REFERRAL_CODES, "code": codes.CONSENT_WITHDRAWN,
                        "display": "Consent withdrawn"}], "text": WITHDRAWN_REASON}


def withdrawn_status() -> dict:
    return {"coding": [{"system": codes.REFERRAL_CODES, "code": codes.CONSENT_WITHDRAWN,
                        "display": "Consent withdrawn"}], "text": "Consent withdrawn"}


async def enforce(repo: Repository, patient_id: str) -> list[FollowUp]:
    ids = await repo.referring_ids("ServiceRequest", "patient", [("Patient", patient_id)])
    requests = await repo.read_many([("ServiceRequest", i) for i in ids])
    cut: dict[str, set[str]] = {}  # request id -> the receivers her Consents no longer cover
    keeps: dict[str, set[str]] = {}  # request id (consent-governed) -> the parties it keeps
    for request in requests:
        body = request.resource
        if not await consent.referral_consents(repo, body):
            continue  # not consent-governed: only the exchange itself can write a referral without a Consent
        requesters = await organisations_of(repo, references_in(body.get("requester")))
        keep = set(requesters)
        try:
            needed = await consent.categories_sent(repo, body)
        except FhirError:
            needed = {codes.CORE}
        for org in await consent.receivers(repo, body):
            if await consent.uncovered(repo, body, org, needed):
                cut.setdefault(request.id, set()).add(org)
            else:
                keep.add(org)
        keeps[request.id] = keep
    if not cut:
        return []
    out: list[FollowUp] = []
    task_removals: list[tuple[str, set[str]]] = []
    for request in requests:
        if request.id not in cut:
            continue
        task_ids = await repo.referring_ids("Task", "focus", [("ServiceRequest", request.id)])
        for task in await repo.read_many([("Task", i) for i in task_ids]):
            removal = await _settle_task(repo, task, request, cut[request.id])
            if isinstance(removal, Update):
                out.append(removal)
            elif removal:
                task_removals.append((task.id, removal))
    return out + unshare_withdrawn(patient_id, requests, keeps, cut, task_removals)


async def _settle_task(repo: Repository, task: StoredResource, request: StoredResource, orgs: set[str]
                       ) -> Update | set[str] | None:
    """The change that cancels or marks one Task of a referral whose receivers `orgs` lost consent; or the
    candidates of an open (unowned) Task to drop from it when other candidates remain."""
    body = task.resource
    owners = await organisations_of(repo, references_in(body.get("owner")))
    if owners:
        if not owners & orgs:
            return None
    else:
        remaining = await consent.receivers(repo, request.resource) - orgs
        if remaining and body.get("status") in task_states.OPEN_STATES:
            return orgs
    status = body.get("status")
    marked = codes.CONSENT_WITHDRAWN in codes.codes_in(body.get("businessStatus"), codes.REFERRAL_CODES)
    if status in task_states.OPEN_STATES:
        new = dict(body, status="cancelled", statusReason=withdrawn_reason(),
                   businessStatus=withdrawn_status())
    elif not marked:
        new = dict(body, businessStatus=withdrawn_status())
    else:
        return None
    return Update(task, new, "consent withdrawn")
