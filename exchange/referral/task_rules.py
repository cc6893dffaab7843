"""Enforces the Task state machine (`task_states`) and the Task's ties to its ServiceRequest on every write.

Who is acting: the caller's organisation compared with the Organizations behind Task.requester and Task.owner
(HealthcareService and PractitionerRole references resolve to their organisation). The exchange itself (system
context: CLI, demo loader, sweeps) is no party; it may make any change the table allows, in any field.
"""
from __future__ import annotations

from exchange.need_to_know.organisations import organisations_in
from exchange.fhir.references import references_in, split_reference
from exchange.errors import PreconditionRequired
from exchange.referral import codes, task_states as states
from exchange.referral.consent import subject_id
from exchange.referral.refusal import refuse
from exchange.store.values import StoredResource
from exchange.kernel.change import Change, Reads


async def focus_request(reads: Reads, body) -> StoredResource | None:  # noqa: ANN001
    for ref in references_in(body.get("focus")):
        split = split_reference(ref)
        if split and split[0] == "ServiceRequest":
            found = await reads.repo.read("ServiceRequest", split[1], reads.access)
            return found if found and not found.deleted else None
    return None


async def check_links(reads: Reads, body) -> StoredResource:  # noqa: ANN001
    """The Task must belong to its ServiceRequest: same Patient, same requester, owner among the performers."""
    request = await focus_request(reads, body)
    if request is None:
        refuse("task-focus", "focus must reference an existing ServiceRequest", "Task.focus")
    sr = request.resource
    if subject_id(body, "for") != subject_id(sr):
        refuse("task-focus", "for must be the ServiceRequest's subject", "Task.for")
    requesters = await organisations_in(reads.repo, body.get("requester"))
    if requesters != await organisations_in(reads.repo, sr.get("requester")):
        refuse("task-focus", "requester must be the ServiceRequest's requester", "Task.requester")
    owners = await organisations_in(reads.repo, body.get("owner"))
    if owners and not owners <= await organisations_in(reads.repo, sr.get("performer")):
        refuse("task-focus", "owner must be one of the ServiceRequest's performers", "Task.owner")
    return request


def _ours(concept: object) -> set[tuple[str, str]]:
    """The (system, code) pairs of the exchange's own CodeSystems in a CodeableConcept."""
    if not isinstance(concept, dict):
        return set()
    return {(c["system"], c["code"]) for c in concept.get("coding") or [] if isinstance(c, dict)
            and isinstance(c.get("system"), str) and c["system"].startswith(f"{codes.BASE}/")
            and isinstance(c.get("code"), str)}


def _value_set_url(value_set_id: str) -> str:
    return f"{codes.BASE}/ValueSet/{value_set_id}"


def _status_reason(body: dict, new: str) -> None:
    """Moving to rejected, cancelled or failed: a code of that state's ValueSet (the table), none of ours outside it."""
    value_set = states.REASON_VALUE_SETS[new]
    allowed = codes.value_set(value_set)
    found = _ours(body.get("statusReason"))
    if not found & allowed:
        refuse("task-status-reason", f"a Task moving to '{new}' needs statusReason with a code of ValueSet "
                                     f"{_value_set_url(value_set)} (text optional)", "Task.statusReason")
    if found - allowed:
        refuse("task-status-reason", f"statusReason of a Task moving to '{new}' holds a code outside ValueSet "
                                     f"{_value_set_url(value_set)}", "Task.statusReason")


def check_business_status(body: dict, old_body: dict | None) -> None:
    """A businessStatus a partner sets or changes: milestone codes (and the exchange's own statuses, which only
    the exchange adds); at least one."""
    status = body.get("businessStatus")
    if status is None or (old_body is not None and status == old_body.get("businessStatus")):
        return
    milestones = codes.value_set(states.MILESTONE_VALUE_SET)
    exchange_set = codes.value_set(states.EXCHANGE_STATUS_VALUE_SET)
    found = _ours(status)
    rule, where = "task-business-status", "Task.businessStatus"
    if not found or found - milestones - exchange_set:
        refuse(rule, f"businessStatus needs a code of ValueSet {_value_set_url(states.MILESTONE_VALUE_SET)} (text "
                     "optional) and no other code of the exchange's", where)
    if (found & exchange_set) - _ours((old_body or {}).get("businessStatus")):
        refuse(rule, f"the codes of ValueSet {_value_set_url(states.EXCHANGE_STATUS_VALUE_SET)} are set by the "
                     "exchange itself", where)


def _reason_and_output(body: dict, old: str | None) -> None:
    new = body.get("status")
    if new == old:
        return
    if new in states.REASON_VALUE_SETS:
        _status_reason(body, new)
    if new == "completed" and not body.get("output"):
        refuse("task-output", "a completed Task needs output (type resulting-activity: what was done)", "Task.output")


async def check_create(reads: Reads, body) -> StoredResource:  # noqa: ANN001
    """The new Task's state and links; returns its ServiceRequest."""
    status = body.get("status")
    if status not in states.CREATE_STATES:
        refuse("task-transition", f"a referral Task is created as {' or '.join(sorted(states.CREATE_STATES))}, "
                                  f"not '{status}'", "Task.status", conflict=True)
    check_business_status(body, None)
    return await check_links(reads, body)


def _changed(current: dict, body: dict, keys) -> list[str]:  # noqa: ANN001
    return sorted(k for k in keys if current.get(k) != body.get(k))


async def check_update(change: Change, reads: Reads) -> None:
    body, old_body = change.after, change.before
    old, new = old_body.get("status"), body.get("status")
    system = change.who.is_system
    org = change.who.organization_id
    roles: set[str] = set()
    if org in await organisations_in(reads.repo, old_body.get("requester")):
        roles.add(states.REQUESTER)
    if org in await organisations_in(reads.repo, old_body.get("owner")):
        roles.add(states.OWNER)
    claim = not old_body.get("owner") and body.get("owner") is not None
    if claim:
        await _check_claim(change, reads, system)
        roles.add(states.OWNER)
    if not system:
        frozen = [e for e in _changed(old_body, body, states.FROZEN_ELEMENTS) if not (claim and e == "owner")]
        if frozen:
            refuse("task-frozen-element", f"Task.{frozen[0]} never changes after creation", f"Task.{frozen[0]}")
    if old == new:
        if states.is_final(old) and not system:
            refuse("task-final", f"the Task is {old}: a final Task does not change", "Task.status", conflict=True)
    else:
        parties = states.allowed_parties(old, new)
        if not parties:
            why = f"the Task is {old}, a final state" if states.is_final(old) else f"no transition from {old}"
            refuse("task-transition", f"{why}: '{old}' -> '{new}' is not allowed", "Task.status", conflict=True)
        if not system and not roles & parties:
            refuse("task-party", f"only the {' or '.join(sorted(parties))} may move a Task from {old} to {new}",
                   "Task.status")
    # which elements each party may change at all is the write-authority table's (`authority`, checked before)
    _reason_and_output(body, old)
    check_business_status(body, old_body)


async def _check_claim(change: Change, reads: Reads, system: bool) -> None:
    """Claiming an open Task: owner and `accepted` in one update, guarded by If-Match, by a listed provider."""
    body, old_body = change.after, change.before
    if old_body.get("status") not in states.CLAIM_FROM or body.get("status") != states.CLAIM_TO:
        refuse("task-claim", f"an open Task is claimed by setting owner and status '{states.CLAIM_TO}' together, "
                             f"from {' or '.join(sorted(states.CLAIM_FROM))}", "Task.owner")
    if change.if_match is None:
        raise PreconditionRequired("task-claim: claiming an open Task needs If-Match with the version you read, so "
                                   "that of two concurrent claims exactly one wins", expression="If-Match")
    if system:
        return
    org = change.who.organization_id
    new_owners = await organisations_in(reads.repo, body.get("owner"))
    if new_owners != {org}:
        refuse("task-claim", "a claim sets owner to your own organisation (or one of its services)", "Task.owner")
    request = await focus_request(reads, old_body)
    performers = await organisations_in(reads.repo, request.resource.get("performer")) if request else set()
    if org not in performers:
        refuse("task-claim", "only a provider listed in the ServiceRequest's performer may claim it", "Task.owner")
