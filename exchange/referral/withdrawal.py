"""Consent withdrawal takes effect at once: the receiver loses the survivor's data, her open referrals are cancelled.

`enforce(unit, patient_id)` recomputes, after every referral write, which receiving organisations still hold an
active Consent covering what their referral discloses. For each that does not:
- its `resource_party` rows for the ServiceRequest, the Patient (unless another referral still covers it), and the
  documents and Consents the referral points at are removed, so every read, search and include stops at once;
- its open Tasks move to `cancelled` (statusReason says consent was withdrawn) and its closed ones get
  businessStatus `consent-withdrawn`: the Task itself stays visible, so the receiver learns why it stopped.
Task changes go through the normal write path as the exchange itself (versioned, audited, notified); the party
removals come last because a Task write re-shares the Task's parties with what it points at.
"""
from __future__ import annotations

from contextvars import ContextVar

from exchange.auth.access import organisations_of
from exchange.fhir.references import references_in
from exchange.errors import FhirError
from exchange.fhir.interactions.write import replace
from exchange.referral import codes, consent, task_states
from exchange.referral.need_to_know import pointed_at
from exchange.store.repository import StoredResource
from exchange.unit import Unit

WITHDRAWN_REASON = "Consent withdrawn by the survivor: the receiving organisation no longer has access to her data"
_running: ContextVar[bool] = ContextVar("referral_withdrawal_running", default=False)


def withdrawn_status() -> dict:
    return {"coding": [{"system": codes.REFERRAL_CODES, "code": codes.CONSENT_WITHDRAWN,
                        "display": "Consent withdrawn"}], "text": "Consent withdrawn"}


async def enforce(unit: Unit, patient_id: str) -> None:
    if _running.get():
        return
    token = _running.set(True)
    try:
        await _enforce(unit, patient_id)
    finally:
        _running.reset(token)


async def _enforce(unit: Unit, patient_id: str) -> None:
    repo = unit.repo
    ids = await repo.referring_ids("ServiceRequest", "subject", [("Patient", patient_id)])
    requests = await repo.read_many([("ServiceRequest", i) for i in ids])
    cut: dict[str, set[str]] = {}
    kept: set[str] = set()
    allowed: dict[tuple[str, str], set[str]] = {}  # (type, id) of documents/consents -> orgs that keep them
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
        kept |= keep
        for rtype in ("DocumentReference", "Consent"):
            for rid in pointed_at(body, rtype):
                allowed.setdefault((rtype, rid), set()).update(keep)
    if not cut:
        return
    system = unit.as_exchange()
    task_removals: list[tuple[str, set[str]]] = []
    for request in requests:
        if request.id not in cut:
            continue
        task_ids = await repo.referring_ids("Task", "focus", [("ServiceRequest", request.id)])
        for task in await repo.read_many([("Task", i) for i in task_ids]):
            removal = await _settle_task(system, task, request, cut[request.id])
            if removal:
                task_removals.append((task.id, removal))
    for request in requests:
        orgs = cut.get(request.id)
        if not orgs:
            continue
        await repo.remove_parties("ServiceRequest", request.id, orgs)
        for rtype in ("DocumentReference", "Consent"):
            for rid in pointed_at(request.resource, rtype):
                await repo.remove_parties(rtype, rid, orgs - allowed.get((rtype, rid), set()))
    for task_id, orgs in task_removals:
        await repo.remove_parties("Task", task_id, orgs)
    lost = set().union(*cut.values()) - kept
    await repo.remove_parties("Patient", patient_id, lost)


async def _settle_task(system: Unit, task: StoredResource, request: StoredResource, orgs: set[str]
                       ) -> set[str] | None:
    """Cancel or mark one Task of a referral whose receivers `orgs` lost consent; or return the candidates of an
    open (unowned) Task to drop from it when other candidates remain."""
    repo = system.repo
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
        new = dict(body, status="cancelled", statusReason={"text": WITHDRAWN_REASON},
                   businessStatus=withdrawn_status())
    elif not marked:
        new = dict(body, businessStatus=withdrawn_status())
    else:
        return None
    await replace(system, task, new, None)
    return None
