"""One referral's facts, derived from the stored history of its Task: plain functions, no database.

What is kept is what statistics need and nothing about her: when the exchange stored each step (the store's own
clock, not times a partner wrote into the Task), the service type and priority, the receiving organisation and the
area its service covers (directory ids), the outcome, and a reason only as a code of a CodeSystem the exchange
publishes (`statusReason.text` and unpublished codes never: a partner could type anything there).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Mapping, Sequence

import orjson

from exchange.fhir.dates import instant_or_none
from exchange.fhir.references import split_reference
from exchange.referral import codes

# The outcome of a sent referral, one per referral, in the order reports show them.
AWAITING = "awaiting"  # requested or received: no decision yet
ACCEPTED = "accepted"  # accepted, in progress or on hold
COMPLETED = "completed"
FAILED = "failed"  # accepted, then could not be delivered
DECLINED = "declined"  # rejected by the receiver
CANCELLED_BEFORE = "cancelled-before-decision"
CANCELLED_AFTER = "cancelled-after-acceptance"
OUTCOMES = (AWAITING, ACCEPTED, COMPLETED, FAILED, DECLINED, CANCELLED_BEFORE, CANCELLED_AFTER)
ACCEPTED_EVER = (ACCEPTED, COMPLETED, FAILED, CANCELLED_AFTER)  # the receiver said yes at some point
REASON_OUTCOMES = {DECLINED: (DECLINED,), FAILED: (FAILED,), "cancelled": (CANCELLED_BEFORE, CANCELLED_AFTER)}

ACKNOWLEDGING = frozenset({"received", "accepted", "rejected"})
DECIDING = frozenset({"accepted", "rejected"})
OTHER_REASON = "other"  # a reason coded outside the exchange's published CodeSystems, or only as text
_OUTCOME_OF_STATUS = {"requested": AWAITING, "received": AWAITING, "accepted": ACCEPTED, "in-progress": ACCEPTED,
                      "on-hold": ACCEPTED, "completed": COMPLETED, "failed": FAILED, "rejected": DECLINED}
# Where a Task carries its acknowledgement deadline (an extension, valueDateTime); the action deadline is
# Task.restriction.period.end.
ACKNOWLEDGE_BY_URLS = (codes.EXT_ACKNOWLEDGE_DUE,)  # set by exchange.referral.deadlines


@dataclass(frozen=True)
class Version:
    stored: datetime  # aware UTC: when the exchange stored it
    body: dict


@dataclass(frozen=True)
class Service:
    organization_id: str | None
    area_id: str | None


@dataclass(frozen=True)
class Fact:
    task_id: str
    sent: datetime
    service_type: str
    priority: str
    area_id: str
    owner_org: str
    outcome: str
    reason: str
    acknowledged: datetime | None
    acknowledge_seconds: int | None
    decide_seconds: int | None
    complete_seconds: int | None
    acknowledge_due: datetime | None
    action_due: datetime | None

    @property
    def month(self) -> str:
        return self.sent.strftime("%Y-%m")


@lru_cache(maxsize=1)
def published_codes() -> dict[str, frozenset[str]]:
    """{CodeSystem url: its codes} of every CodeSystem in conformance/."""
    out = {}
    for path in sorted(codes.conformance_dir().glob("CodeSystem-*.json")):
        system = orjson.loads(path.read_bytes())
        out[system["url"]] = frozenset(codes.hierarchy(system["id"]))
    return out


def reason_code(status_reason: object) -> str:
    """`system|code` of the first coding from a published CodeSystem; "other" for a reason given otherwise;
    "" when there is none."""
    if not isinstance(status_reason, dict) or not (status_reason.get("coding") or status_reason.get("text")):
        return ""
    published = published_codes()
    for coding in status_reason.get("coding") or []:
        if isinstance(coding, dict) and coding.get("code") in published.get(coding.get("system"), ()):
            return f"{coding['system']}|{coding['code']}"
    return OTHER_REASON


def service_type_of(request: dict | None) -> str:
    if not request:
        return ""
    for concept in (request.get("code"), *(request.get("category") or [])):
        found = codes.codes_in(concept, codes.SERVICE_TYPE)
        if found:
            return found[0][:64]
    return ""


def acknowledge_due(task: dict) -> datetime | None:
    for extension in task.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") in ACKNOWLEDGE_BY_URLS:
            return instant_or_none(extension.get("valueDateTime"))
    return None


def action_due(task: dict) -> datetime | None:
    period = (task.get("restriction") or {}).get("period") or {}
    return instant_or_none(period.get("end"), end=True) if isinstance(period, dict) else None


def _reference(value: object) -> tuple[str, str] | None:
    return split_reference(value.get("reference")) if isinstance(value, dict) and \
        isinstance(value.get("reference"), str) else None


def receiving_service(task: dict, request: dict | None) -> str | None:
    """The HealthcareService the referral goes to: the owner, else (an open referral) the request's first one."""
    owner = _reference(task.get("owner"))
    if owner and owner[0] == "HealthcareService":
        return owner[1]
    for performer in (request or {}).get("performer") or []:
        target = _reference(performer)
        if target and target[0] == "HealthcareService":
            return target[1]
    return None


def request_id(task: dict) -> str | None:
    target = _reference(task.get("focus"))
    return target[1] if target and target[0] == "ServiceRequest" else None


def _seconds(start: datetime, end: datetime | None) -> int | None:
    return None if end is None else max(0, int((end - start).total_seconds()))


def derive(task_id: str, versions: Sequence[Version], request: dict | None, services: Mapping[str, Service]
           ) -> Fact | None:
    """The facts of one Task from its versions (oldest first); None when it is not (or no longer) a sent
    referral: a draft, entered in error, deleted."""
    if not versions or not isinstance(versions[-1].body.get("status"), str):
        return None  # deleted
    with_status = [v for v in versions if isinstance(v.body.get("status"), str)]
    sent = next((v.stored for v in with_status if v.body["status"] != "draft"), None)
    latest = with_status[-1].body
    status = latest["status"]
    if sent is None or status == "entered-in-error":
        return None

    def first(states: frozenset[str]) -> datetime | None:
        return next((v.stored for v in with_status if v.body["status"] in states), None)

    acknowledged, decided = first(ACKNOWLEDGING), first(DECIDING)
    accepted, completed = first(frozenset({"accepted"})), first(frozenset({"completed"}))
    if status == "cancelled":
        outcome = CANCELLED_AFTER if accepted is not None else CANCELLED_BEFORE
    else:
        outcome = _OUTCOME_OF_STATUS.get(status, AWAITING)
    reason = reason_code(latest.get("statusReason")) if outcome in (DECLINED, FAILED, CANCELLED_BEFORE,
                                                                       CANCELLED_AFTER) else ""
    owner = _reference(latest.get("owner"))
    service_id = receiving_service(latest, request)
    service = services.get(service_id) if service_id else None
    owner_org = owner[1] if owner and owner[0] == "Organization" else \
        (service.organization_id if service and owner else None)
    priority = latest.get("priority") or (request or {}).get("priority") or ""
    return Fact(task_id=task_id, sent=sent, service_type=service_type_of(request), priority=str(priority)[:16],
                area_id=(service.area_id if service else None) or "", owner_org=owner_org or "",
                outcome=outcome, reason=reason[:160], acknowledged=acknowledged,
                acknowledge_seconds=_seconds(sent, acknowledged), decide_seconds=_seconds(sent, decided),
                complete_seconds=_seconds(sent, completed), acknowledge_due=acknowledge_due(latest),
                action_due=action_due(latest))


def purged(versions: Sequence[Version]) -> bool:
    """Every version replaced by the retention purge's stub: the facts derived before it stand."""
    return bool(versions) and not any(isinstance(v.body.get("status"), str) for v in versions)


def service_of(body: dict) -> Service:
    """A HealthcareService's organisation and the first Location of its coverage area."""
    org = _reference(body.get("providedBy"))
    area = None
    for location in body.get("coverageArea") or []:
        target = _reference(location)
        if target and target[0] == "Location":
            area = target[1]
            break
    return Service(org[1] if org and org[0] == "Organization" else None, area)
