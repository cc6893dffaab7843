"""What the coordinating organisation sees of the referrals escalated to it: that each exists, its service type,
priority and area, its parties, its deadlines and the ages of its steps, and a re-route waiting for an answer.

Nothing about her: the projection is built from an allow-list of what the Task, its ServiceRequest and the directory
say about the referral, never from her records (no Patient, Consent or document is read), no note, description,
statusReason or other free text, no identifier (a case code stands for her). The coordinator is no party of the
referral: it reads this here, never the Task over FHIR. Every request is recorded in the exchange log.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Sequence

from exchange.context import RequestContext
from exchange.coordination.access import require_coordinator
from exchange.fhir.references import split_reference
from exchange.fhir.search import parse_search
from exchange.fhir.dates import instant_or_none
from exchange.referral import deadlines, escalation
from exchange.referral.exchange_elements import escalation_of
from exchange.referral.overdue import is_marked
from exchange.kernel.exchange import Exchange
from exchange.stats import facts
from exchange.store.clock import fhir_instant
from exchange.store.repository import Repository
from exchange.store.values import StoredResource
from exchange.store.visibility import UNRESTRICTED
from exchange.fhir.search_sql import plan_conditions, plan_order
from exchange.kernel.unit import Event, open_unit

ACKNOWLEDGED = frozenset({"received", "accepted", "rejected"})
HISTORY = 100  # versions of one Task read for its steps (a referral settles in far fewer)


@dataclass(frozen=True)
class Step:
    name: str
    at: datetime

    def as_json(self, now: datetime) -> dict:
        return {"step": self.name, "at": fhir_instant(self.at),
                "ageHours": round(max(0.0, (now - self.at).total_seconds()) / 3600, 1)}


def steps_of(versions: Sequence[StoredResource]) -> list[Step]:
    """When the exchange stored each step of the referral (oldest version first): sent, acknowledged, accepted,
    in progress, overdue, escalated, rerouted."""
    found: dict[str, datetime] = {}

    def first(name: str, at: datetime) -> None:
        found.setdefault(name, at)

    for version in versions:
        body = version.resource
        status = body.get("status")
        if not isinstance(status, str):
            continue
        if status != "draft":
            first("sent", version.last_updated)
        if status in ACKNOWLEDGED:
            first("acknowledged", version.last_updated)
        if status == "accepted":
            first("accepted", version.last_updated)
        if status == "in-progress":
            first("in-progress", version.last_updated)
        if is_marked(body):
            first("overdue", version.last_updated)
    latest = versions[-1].resource if versions else {}
    for name in (escalation.ESCALATED, escalation.REROUTED):
        at = instant_or_none(escalation.part(escalation_of(latest), name))
        if at is not None:
            found[name] = at
    return sorted((Step(n, a) for n, a in found.items()), key=lambda s: s.at)


def _reference_of(value: object) -> tuple[str, str] | None:
    reference = value.get("reference") if isinstance(value, Mapping) else None
    return split_reference(reference) if isinstance(reference, str) else None


async def _party(repo: Repository, value: object) -> dict | None:
    """An organisation (and the service) a Task names, with the directory's name: never anything else."""
    target = _reference_of(value)
    if target is None:
        return None
    out: dict = {}
    org_id = target[1] if target[0] == "Organization" else None
    if target[0] == "HealthcareService":
        service = await repo.read(*target)
        out["service"] = f"HealthcareService/{target[1]}"
        if service is not None and not service.deleted:
            org_id = facts.service_of(service.resource).organization_id
            if isinstance(service.resource.get("name"), str):
                out["serviceName"] = service.resource["name"]
    if org_id:
        org = await repo.read("Organization", org_id)
        out["organization"] = f"Organization/{org_id}"
        if org is not None and not org.deleted and isinstance(org.resource.get("name"), str):
            out["name"] = org.resource["name"]
    return out


async def project(repo: Repository, task: StoredResource, now: datetime) -> dict:
    body = task.resource
    target = _reference_of(body.get("focus"))
    request = await repo.read(*target) if target and target[0] == "ServiceRequest" else None
    request_body = request.resource if request is not None and not request.deleted else {}
    service_id = facts.receiving_service(body, request_body)
    service = await repo.read("HealthcareService", service_id) if service_id else None
    area = facts.service_of(service.resource).area_id if service is not None and not service.deleted else None
    versions, _ = await repo.history("Task", task.id, UNRESTRICTED, HISTORY, 0)
    acknowledge, action = deadlines.stored_of(body)
    proposed = escalation.proposed_owner(body)
    return {
        "task": f"Task/{task.id}",
        "status": body.get("status"),
        "overdue": is_marked(body),
        "serviceType": facts.service_type_of(request_body) or None,
        "priority": deadlines.priority_of(request_body, body),
        "area": f"Location/{area}" if area else None,
        "requester": await _party(repo, body.get("requester")),
        "owner": await _party(repo, body.get("owner")),
        "deadlines": {"acknowledge": acknowledge, "action": action},
        "steps": [s.as_json(now) for s in steps_of(list(reversed(versions)))],
        "reroute": {"proposedOwner": await _party(repo, {"reference": proposed}),
                    "proposed": escalation.part(escalation_of(body), escalation.PROPOSED),
                    "waitingFor": "requester"} if proposed else None,
    }


async def escalated_referrals(exchange: Exchange, ctx: RequestContext, now: datetime) -> dict:
    """The referrals escalated to the coordinating organisation, newest change first (at most max_page_size)."""
    limit = exchange.settings.max_page_size
    plan = parse_search("Task", [("escalated", "true"), ("_sort", "-_lastUpdated")], strict=True,
                        default_count=limit, max_count=limit)
    async with open_unit(exchange, ctx, "operation", "Task", read_only=True) as unit:
        require_coordinator(ctx, exchange.settings)
        tasks, _ = await unit.repo.search("Task", plan_conditions(plan), plan_order(plan), limit, 0,
                                              UNRESTRICTED, with_total=False)
        mine = f"Organization/{exchange.settings.coordinating_organization}"
        referrals = [await project(unit.repo, task, now) for task in tasks if escalation.escalated_to(task.resource)
                     == mine]
        unit.record(Event("operation", "E", "Task"))
    return {"generated": fhir_instant(now), "total": len(referrals), "referrals": referrals,
            "coordinatingOrganization": mine}

