"""Deadlines by priority: when a provider must acknowledge a referral and when it must act on it.

The deployment's table (`Settings.referral_deadlines`, rows of `DeadlineRule`, first match wins) maps the
ServiceRequest's priority (routine | urgent | asap | stat; none given counts as routine) and service type (its code
and categories, a row's type matching its descendants too) to hours. Both deadlines count from when the referral is
sent (the exchange's clock when the Task is stored as `requested`), never from a time a partner wrote. A row with
`from_incident` counts the action deadline from the incident date the referral carries (the `incident-date`
extension on the ServiceRequest: clinical management of rape must start within 72 hours of the incident), but never
earlier than the acknowledgement deadline, so a late referral still gets its hour to be acknowledged.

Stored on the Task by the exchange: the action deadline in `Task.restriction.period.end` (R4: "when fulfilment is
sought"), the acknowledgement deadline in the `acknowledgement-due` extension (R4 Task has no element for it; the
Gravity SDOH Clinical Care guide defines none). Searchable: `Task?deadline=lt...` and `Task?acknowledgement-due=lt...`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Mapping, Sequence

from exchange.fhir.dates import instant_or_none as instant
from exchange.referral import codes
from exchange.settings import DeadlineRule
from exchange.store.clock import fhir_instant

PRIORITIES = ("routine", "urgent", "asap", "stat")
UNACKNOWLEDGED = frozenset({"requested"})  # waiting for the acknowledgement deadline
NOT_STARTED = frozenset({"requested", "received", "accepted"})  # waiting for the action deadline


@dataclass(frozen=True)
class Deadlines:
    acknowledge: datetime
    action: datetime

    def stored(self) -> tuple[str, str]:
        return fhir_instant(self.acknowledge), fhir_instant(self.action)


def service_types_of(request: Mapping) -> list[str]:
    return codes.codes_in(request.get("code"), codes.SERVICE_TYPE) + \
        codes.codings_in(request.get("category"), codes.SERVICE_TYPE)


def priority_of(request: Mapping, task: Mapping | None = None) -> str:
    for body in (request, task or {}):
        if body.get("priority") in PRIORITIES:
            return body["priority"]
    return "routine"


def rule_for(rules: Sequence[DeadlineRule], priority: str, service_types: Sequence[str]) -> DeadlineRule:
    for rule in rules:
        if rule.priority is not None and rule.priority != priority:
            continue
        if rule.service_type is not None and not any(codes.is_within(t, rule.service_type) for t in service_types):
            continue
        return rule
    return rules[-1]  # the settings keep a catch-all row last


def incident_date(request: Mapping) -> datetime | None:
    for extension in request.get("extension") or []:
        if isinstance(extension, Mapping) and extension.get("url") == codes.EXT_INCIDENT_DATE:
            return instant(extension.get("valueDateTime") or extension.get("valueDate"))
    return None


def compute(rules: Sequence[DeadlineRule], request: Mapping, task: Mapping | None, sent: datetime) -> Deadlines:
    rule = rule_for(rules, priority_of(request, task), service_types_of(request))
    acknowledge = sent + timedelta(hours=rule.acknowledge_hours)
    start = sent
    if rule.from_incident:
        incident = incident_date(request)
        if incident is not None:
            start = min(incident, sent)
    return Deadlines(acknowledge, max(start + timedelta(hours=rule.action_hours), acknowledge))


def stored_of(task: Mapping | None) -> tuple[str | None, str | None]:
    """(acknowledgement deadline, action deadline) as stored on the Task (FHIR dateTime strings, or None)."""
    if not task:
        return None, None
    acknowledge = next((e.get("valueDateTime") for e in task.get("extension") or []
                        if isinstance(e, Mapping) and e.get("url") == codes.EXT_ACKNOWLEDGE_DUE), None)
    action = ((task.get("restriction") or {}).get("period") or {}).get("end")  # (a malformed row raises)
    return acknowledge, action


def with_stored(task: Mapping, acknowledge: str | None, action: str | None) -> dict:
    """`task` with exactly these deadlines (None: without that one); its other extensions and restriction stay."""
    extensions = [e for e in task.get("extension") or []
                  if not (isinstance(e, Mapping) and e.get("url") == codes.EXT_ACKNOWLEDGE_DUE)]
    if acknowledge is not None:
        extensions.append({"url": codes.EXT_ACKNOWLEDGE_DUE, "valueDateTime": acknowledge})
    out = {k: v for k, v in task.items() if k not in ("extension", "restriction")}
    if extensions:
        out["extension"] = extensions
    restriction = dict(task.get("restriction") or {}) if isinstance(task.get("restriction"), Mapping) else {}
    period = {k: v for k, v in (restriction.get("period") or {}).items() if k != "end"} \
        if isinstance(restriction.get("period"), Mapping) else {}
    if action is not None:
        period["end"] = action
    if period:
        restriction["period"] = period
    else:
        restriction.pop("period", None)
    if restriction:
        out["restriction"] = restriction
    return out


def due_now(task: Mapping, fallback: timedelta) -> datetime | None:
    """The deadline the Task waits for in its current status: the acknowledgement while it is `requested`, the
    action until the service has started (in progress), none after. A Task stored before deadlines were set:
    authoredOn + `fallback` (the caller decides which statuses can be late)."""
    status = task.get("status")
    acknowledge, action = stored_of(task)
    candidates = []
    if status in UNACKNOWLEDGED and acknowledge:
        candidates.append(instant(acknowledge))
    if status in NOT_STARTED and action:
        candidates.append(instant(action, end=True))
    found = [c for c in candidates if c is not None]
    if found:
        return min(found)
    if acknowledge or action:
        return None
    authored = instant(task.get("authoredOn"))
    return authored + fallback if authored is not None else None
