"""Escalation: a referral still late a while after it was marked overdue goes to the deployment's coordinating
organisation, which may propose to re-route it; the requester agrees or declines.

Each step is a new version of the Task written by the exchange itself (audited with the exchange as the agent,
notified on the `referral-overdue` topic and to the inbox alerts), recorded in the Task's `escalation` extension
(only the exchange writes it, `exchange.referral.exchange_elements`): `escalated` (when), `coordinator` (to whom),
and while a re-route waits for the requester's answer `proposed-owner` and `proposed`; `rerouted` when the
requester agreed. A re-routed Task goes back to `requested` with the new owner and new deadlines, its overdue mark
removed; the referral's ServiceRequest names the new owner as its performer, so the old owner's access ends and the
new owner's begins (`exchange.need_to_know.performers`).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Mapping

from exchange.referral import codes, deadlines
from exchange.referral.exchange_elements import escalation_of, with_escalation
from exchange.referral.overdue import change_each, due_at, is_marked, scan, sweep_overdue
from exchange.kernel.exchange import Exchange
from exchange.store import clock
from exchange.store.clock import fhir_instant

ESCALATED, COORDINATOR, PROPOSED_OWNER, PROPOSED, REROUTED = (
    "escalated", "coordinator", "proposed-owner", "proposed", "rerouted")
REROUTABLE = deadlines.NOT_STARTED  # once the service has started, the coordinator no longer moves it


def part(escalation: Mapping | None, name: str):  # noqa: ANN201 - the value[x] of one part, or None
    for item in (escalation or {}).get("extension") or []:
        if isinstance(item, Mapping) and item.get("url") == name:
            return next((v for k, v in item.items() if k.startswith("value")), None)
    return None


def _parts(escalation: Mapping | None, **changes) -> dict:
    """The escalation extension with parts set (a value) or removed (None); the others kept in order."""
    kept = [p for p in (escalation or {}).get("extension") or [] if p.get("url") not in changes]
    value_key = {ESCALATED: "valueDateTime", PROPOSED: "valueDateTime", REROUTED: "valueDateTime",
                 COORDINATOR: "valueReference", PROPOSED_OWNER: "valueReference"}
    added = [{"url": name, value_key[name]: value} for name, value in changes.items() if value is not None]
    return {"url": codes.EXT_ESCALATION, "extension": kept + added}


def escalated_to(task: Mapping) -> str | None:
    reference = part(escalation_of(task), COORDINATOR)
    return reference.get("reference") if isinstance(reference, Mapping) else None


def proposed_owner(task: Mapping) -> str | None:
    reference = part(escalation_of(task), PROPOSED_OWNER)
    return reference.get("reference") if isinstance(reference, Mapping) else None


def rerouted_at(task: Mapping) -> str | None:
    return part(escalation_of(task), REROUTED)


def escalation_due(task: Mapping, fallback: timedelta, delay: timedelta) -> datetime | None:
    due = due_at(dict(task), fallback)
    return due + delay if due is not None else None


def with_proposal(task: Mapping, owner: str | None, at: datetime) -> dict:
    """The Task with a re-route to `owner` proposed (None: the proposal withdrawn or declined)."""
    return with_escalation(task, _parts(escalation_of(task), **{
        PROPOSED_OWNER: {"reference": owner} if owner else None, PROPOSED: fhir_instant(at) if owner else None}))


def rerouted(task: Mapping, owner: str, at: datetime, new_deadlines: deadlines.Deadlines) -> dict:
    """The Task sent again, to `owner`: requested, new deadlines, no overdue mark, the re-route recorded."""
    body = with_escalation(task, _parts(escalation_of(task), **{PROPOSED_OWNER: None, PROPOSED: None,
                                                               REROUTED: fhir_instant(at)}))
    body = deadlines.with_stored(body, *new_deadlines.stored())
    body.update(owner={"reference": owner}, status="requested")
    body.pop("statusReason", None)
    status = dict(body.get("businessStatus") or {})
    coding = [c for c in status.get("coding") or []
              if not (c.get("system") == codes.REFERRAL_CODES and c.get("code") == codes.OVERDUE)]
    if coding:
        status["coding"] = coding
        if status.get("text") == "Overdue":
            status.pop("text")
        body["businessStatus"] = status
    else:
        body.pop("businessStatus", None)
    return body


async def escalate_overdue(exchange: Exchange, now: datetime | None = None) -> int:
    """Escalate every overdue Task still late `referral_escalation_hours` after its deadline to the coordinating
    organisation (none set: nothing is escalated); return how many were escalated."""
    coordinator = exchange.settings.coordinating_organization
    if not coordinator:
        return 0
    now = now or clock.utcnow()
    fallback = timedelta(hours=exchange.settings.referral_overdue_hours)
    delay = timedelta(hours=exchange.settings.referral_escalation_hours)

    def due(task: dict) -> bool:
        at = escalation_due(task, fallback, delay)
        return is_marked(task) and escalation_of(task) is None and at is not None and at <= now

    return await change_each(exchange, "escalation", await scan(exchange, "escalation", due), lambda task: (
        with_escalation(task, _parts(None, **{ESCALATED: fhir_instant(now), COORDINATOR: {
            "reference": f"Organization/{coordinator}"}})) if due(task) else None))


async def sweep_referrals(exchange: Exchange, now: datetime | None = None) -> tuple[int, int]:
    """The deployment's referral sweep (at `now`, by default the store's clock): first the overdue marks (the
    reminders), then the escalations."""
    now = now or clock.utcnow()
    marked = await sweep_overdue(exchange, now)
    return marked, await escalate_overdue(exchange, now)
