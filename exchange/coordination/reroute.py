"""Re-routing an escalated referral: the coordinator proposes another provider, the requester agrees or declines.

The coordinator's proposal and the requester's answer are requests of theirs (recorded in the exchange log as
theirs, refusals too); the changes they cause are the exchange's own (`apply_follow_ups`: each an AuditEvent whose
agent is the exchange, linked to the request, versioned and notified). On agreement the referral goes to the new
provider only if her Consent permits it: the ServiceRequest names the new provider as its performer (so the old
one's access ends, `exchange.need_to_know.performers`) and the Task is sent again (`escalation.rerouted`: requested,
new deadlines). Without the requester's agreement nothing moves: a proposal only waits, and a decline removes it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Mapping

from exchange.need_to_know.organisations import organisations_of
from exchange.kernel.change import Update
from exchange.context import RequestContext
from exchange.coordination.access import require_coordinator
from exchange.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from exchange.fhir.interactions.write import apply_follow_ups
from exchange.fhir.references import references_in, split_reference
from exchange.referral import consent, deadlines, escalation, profile
from exchange.kernel.exchange import Exchange
from exchange.store.repository import Repository
from exchange.store.values import StoredResource
from exchange.kernel.unit import Event, Unit, open_unit

TARGET_TYPES = ("HealthcareService", "Organization")


def _owner_reference(value: object) -> str:
    target = split_reference(value) if isinstance(value, str) else None
    if target is None or target[0] not in TARGET_TYPES:
        raise BadRequest("owner must be a HealthcareService/[id] or Organization/[id] reference", expression="owner")
    return f"{target[0]}/{target[1]}"


async def _escalated_task(unit: Unit, task_id: str, coordinator: str | None) -> StoredResource:
    """The Task, escalated to the coordinating organisation and still open to a re-route (404 otherwise: the
    coordinator learns of no referral that was not escalated to it)."""
    task = await unit.repo.read("Task", task_id)
    mine = f"Organization/{coordinator}" if coordinator else None
    if task is None or task.deleted or mine is None or escalation.escalated_to(task.resource) != mine:
        raise NotFound(f"Task/{task_id} is not a referral escalated to the coordinating organisation",
                       expression="Task.id")
    return task


def _open(task: StoredResource) -> None:
    if task.resource.get("status") not in escalation.REROUTABLE:
        raise Conflict(f"reroute-closed: Task/{task.id} is {task.resource.get('status')}; only a referral not yet "
                       f"started ({', '.join(sorted(escalation.REROUTABLE))}) is re-routed",
                       expression="Task.status", code="conflict")


async def _target(repo: Repository, owner: str, task: Mapping) -> set[str]:
    """The organisation(s) behind a directory entry that can take the referral (422 otherwise)."""
    kind, rid = split_reference(owner) or ("", "")
    found = await repo.read(kind, rid)
    if found is None or found.deleted:
        raise Unprocessable(f"reroute-target: {owner} is not in the directory", expression="owner")
    if kind == "HealthcareService" and not profile.accepts_referrals(found.resource):
        raise Unprocessable(f"reroute-target: {owner} is not taking referrals (inactive or closed)",
                            expression="owner")
    if list(references_in(task.get("owner"))) == [owner]:
        raise Unprocessable(f"reroute-target: the referral is already with {owner}", expression="owner")
    return await organisations_of(repo, [owner])


async def propose(exchange: Exchange, ctx: RequestContext, task_id: str, owner: object, now: datetime) -> dict:
    """The coordinator proposes `owner` for an escalated referral; it waits for the requester's answer."""
    async with open_unit(exchange, ctx, "operation", "Task", task_id) as unit:
        require_coordinator(ctx, exchange.settings)
        task = await _escalated_task(unit, task_id, exchange.settings.coordinating_organization)
        _open(task)
        reference = _owner_reference(owner)
        await _target(unit.repo, reference, task.resource)
        unit.record(Event("operation", "E", "Task", task_id))
        await apply_follow_ups(unit, [Update(task, escalation.with_proposal(task.resource, reference, now),
                                             "re-route proposed by the coordinating organisation")])
    return {"task": f"Task/{task_id}", "proposedOwner": reference, "waitingFor": "requester"}


async def _requester_task(unit: Unit, ctx: RequestContext, task_id: str) -> StoredResource:
    """The Task as its requester sees it: 404 for a non-party, 403 for a party that is not the requester."""
    task = await unit.repo.read("Task", task_id, unit.access)
    if task is None or task.deleted:
        raise NotFound(f"Task/{task_id} is not known", expression="Task.id")
    if not ctx.is_system and ctx.organization_id not in await organisations_of(
            unit.repo, references_in(task.resource.get("requester"))):
        raise Forbidden("reroute-requester: only the organisation that sent the referral answers a re-route",
                        expression="Task.requester")
    if not escalation.proposed_owner(task.resource):
        raise Conflict(f"reroute-none: no re-route of Task/{task_id} waits for an answer", expression="Task.id",
                       code="conflict")
    return task


async def _permitted(repo: Repository, request: Mapping, organizations: set[str]) -> None:
    """Her Consent must let every new receiving organisation have what the referral discloses (409 otherwise)."""
    sent = await consent.categories_sent(repo, request)
    consents = [split_reference(r) for r in references_in(request.get("supportingInfo"))]
    bodies = [found.resource for kind, rid in (c for c in consents if c and c[0] == "Consent")
              if (found := await repo.read(kind, rid)) is not None and not found.deleted]
    for organization in organizations:
        allowed: set[str] = set()
        for body in bodies:
            allowed |= await consent.permitted_categories(repo, body, organization)
        if not bodies or not sent <= allowed:
            raise Conflict(f"reroute-consent: her Consent does not let Organization/{organization} receive this "
                           "referral; record her consent to it (update the Consent), then agree",
                           expression="ServiceRequest.supportingInfo", code="conflict")


async def answer(exchange: Exchange, ctx: RequestContext, task_id: str, agree: bool, now: datetime) -> dict:
    """The requester agrees to the proposed re-route (the referral moves) or declines it (the proposal goes)."""
    async with open_unit(exchange, ctx, "operation", "Task", task_id) as unit:
        task = await _requester_task(unit, ctx, task_id)
        owner = escalation.proposed_owner(task.resource)
        unit.record(Event("operation", "E", "Task", task_id))
        if not agree:
            await apply_follow_ups(unit, [Update(task, escalation.with_proposal(task.resource, None, now),
                                                 "re-route declined by the requester")])
            return {"task": f"Task/{task_id}", "rerouted": False}
        _open(task)
        target = next((t for t in map(split_reference, references_in(task.resource.get("focus")))
                       if t and t[0] == "ServiceRequest"), None)
        request = await unit.repo.read(*target) if target else None
        if request is None or request.deleted:
            raise Conflict("reroute-request: the referral's ServiceRequest is gone", expression="Task.focus",
                           code="conflict")
        await _permitted(unit.repo, request.resource, await _target(unit.repo, owner, task.resource))
        new_deadlines = deadlines.compute(exchange.settings.referral_deadlines, request.resource, task.resource,
                                          now.replace(microsecond=0))
        # the Task first (the new owner becomes a party of the referral), then the request: its new performer
        # list leaves the old owner party of nothing (exchange.need_to_know.performers.follow_performers)
        await apply_follow_ups(unit, [Update(task, escalation.rerouted(task.resource, owner, now, new_deadlines),
                                             "re-routed")])
        request = await unit.repo.read("ServiceRequest", request.id)  # (the Task's follow-ups may have written it)
        await apply_follow_ups(unit, [Update(request, dict(request.resource, performer=[{"reference": owner}]),
                                             "re-routed: new performer")])
    return {"task": f"Task/{task_id}", "rerouted": True, "owner": owner}
