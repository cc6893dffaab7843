"""Re-offer in one step (`POST Task/[id]/$reoffer`): a declined, cancelled or failed referral goes out again.

The requester's organisation names the provider that gets it now (`owner`), or sends it back to the pool (the
`performer`s named, or else the request's current performers without the organisation that had it). In one unit of
work, as the caller, through the kernel's ordinary writes (so every referral rule applies: routing, her consent
must cover whoever receives it, need to know): `ServiceRequest.performer` becomes the new owner or pool, and a new
Task is created, `requested`, owned by the new owner or open for the pool to claim, with the `reoffer-of`
extension naming the old Task. The old Task stays as it was (its reason counts in the statistics). One more
AuditEvent (subtype exchange-event|reoffer, the old Task as entity) says the writes were a re-offer; the new Task
is notified like any other. Which states may be re-offered is the Task state table's (`REOFFER_FROM`).
"""
from __future__ import annotations

from exchange.need_to_know.organisations import organisations_of
from exchange.context import RequestContext
from exchange.errors import BadRequest, Forbidden
from exchange.fhir.interactions.read import read_in
from exchange.fhir.interactions.result import Result
from exchange.fhir.interactions.write import current_for_write, insert_new, replace
from exchange.fhir.references import references_in, split_reference
from exchange.referral import codes, task_states as states
from exchange.referral.refusal import refuse
from exchange.referral.rules import REQUEST_OPEN
from exchange.kernel.exchange import Exchange
from exchange.store import clock
from exchange.kernel.unit import Event, open_unit

INTERACTION = "reoffer"  # the AuditEvent subtype (CodeSystem exchange-event)
RULE = "task-reoffer"
RECEIVERS = ("Organization", "HealthcareService")
# What the new Task keeps of the old one: the requester's own elements, never the owner's answer or the deadlines.
KEPT = ("intent", "code", "focus", "for", "requester", "priority", "description", "input")


def parse(body: object) -> tuple[dict | None, list[dict] | None]:
    """(owner, performers) of the operation's Parameters: one owner, or performers (the pool), or neither."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("$reoffer takes a Parameters resource", expression="Parameters")
    owner, performers = None, []
    given = body.get("parameter") or []
    if not isinstance(given, list):
        raise BadRequest("Parameters.parameter must be an array", expression="Parameters.parameter")
    for i, parameter in enumerate(given):
        where = f"Parameters.parameter[{i}]"
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if name not in ("owner", "performer"):
            raise BadRequest("$reoffer takes only owner and performer", expression=where, code="not-supported")
        reference = parameter.get("valueReference")
        target = split_reference(reference["reference"]) if isinstance(reference, dict) and \
            isinstance(reference.get("reference"), str) else None
        if target is None or target[0] not in RECEIVERS:
            raise BadRequest(f"{name} is a valueReference to an Organization or HealthcareService",
                             expression=f"{where}.valueReference")
        value = {"reference": f"{target[0]}/{target[1]}"}
        if name == "owner":
            if owner is not None:
                raise BadRequest("at most one owner", expression=where)
            owner = value
        else:
            performers.append(value)
    if owner is not None and performers:
        raise BadRequest("name the owner or the performers (the pool), not both", expression="Parameters.parameter")
    return owner, performers or None


async def reoffer(exchange: Exchange, ctx: RequestContext, task_id: str, body: object) -> Result:
    owner, pool = parse(body)
    async with open_unit(exchange, ctx, INTERACTION, "Task", task_id) as unit:
        old = await read_in(unit, "Task", task_id)  # 404 for anyone who may not see it
        task = old.resource
        repo = unit.repo
        if not ctx.is_system and ctx.organization_id not in await organisations_of(
                repo, references_in(task.get("requester"))):
            raise Forbidden(f"{RULE}: only the requester's organisation re-offers a referral",
                            expression="Task.requester")
        if task.get("status") not in states.REOFFER_FROM:
            refuse(RULE, f"only a {', '.join(sorted(states.REOFFER_FROM))} Task is re-offered, this one is "
                         f"{task.get('status')}", "Task.status", conflict=True)
        focus = next((split_reference(r) for r in references_in(task.get("focus"))), None)
        request = await current_for_write(unit, "ServiceRequest", focus[1], None) if focus else None
        if request is None or request.resource.get("status") not in REQUEST_OPEN:
            refuse(RULE, "its ServiceRequest is no longer open", "Task.focus", conflict=True)
        siblings = await repo.read_many([("Task", i) for i in await repo.referring_ids(
            "Task", "focus", [("ServiceRequest", request.id)]) if i != old.id])
        if any(s.resource.get("status") in states.OPEN_STATES for s in siblings if not s.deleted):
            refuse(RULE, "another Task of its ServiceRequest is still open", "Task.focus", conflict=True)
        if owner is not None:
            performers = [owner]
        elif pool is not None:
            performers = pool
        else:
            had = await organisations_of(repo, references_in(task.get("owner")))
            performers = [p for p in request.resource.get("performer") or []
                          if not await organisations_of(repo, references_in(p)) & had]
            if not performers:
                raise BadRequest("nobody is left in the pool: name the owner or the performers",
                                 expression="Parameters.parameter")
        if performers != request.resource.get("performer"):
            await replace(unit, request, dict(request.resource, performer=performers), request.version_id)
        new = {"resourceType": "Task", **{k: task[k] for k in KEPT if k in task}, "status": states.REOFFER_STATUS,
               "authoredOn": clock.fhir_instant(clock.utcnow()),
               "extension": [{"url": codes.EXT_REOFFER_OF, "valueReference": {"reference": f"Task/{old.id}"}}]}
        if (task.get("meta") or {}).get("profile"):
            new["meta"] = {"profile": task["meta"]["profile"]}
        if owner is not None:
            new["owner"] = owner
        stored = await insert_new(unit, "Task", new)
        unit.record(Event(INTERACTION, "E", "Task", old.id, old.version_id))
    return Result(201, stored=stored, location=True)
