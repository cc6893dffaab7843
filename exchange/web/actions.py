"""What a person may do to a referral Task from the web, as data read with the Task state table.

Each action is a status change of `exchange.referral.task_states` (or a note); the page offers only those the table
allows this person's organisation (requester or owner) from the Task's current status, and the update still goes
through the same interaction and rules as the API, which decide.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from exchange.referral import codes, task_states as states
from exchange.store.clock import fhir_instant


@dataclass(frozen=True)
class Action:
    name: str
    to: str | None  # the new status (None: a note, no status change)
    needs: str | None  # "reason" (a coded statusReason), "milestone" (a coded businessStatus; words optional in
    # both), "outcome" (output), "note" (note.text), "provider" (to whom a re-offer goes: `Task/[id]/$reoffer`)


ACTIONS: tuple[Action, ...] = (
    Action("accept", "accepted", None),
    Action("decline", "rejected", "reason"),
    Action("start", "in-progress", None),
    Action("hold", "on-hold", None),
    Action("complete", "completed", "outcome"),
    Action("fail", "failed", "reason"),
    Action("cancel", "cancelled", "reason"),
    Action("progress", None, "milestone"),
    Action("reoffer", None, "provider"),
    Action("note", None, "note"),
)
CODED = ("reason", "milestone")  # the actions whose person chooses a code (`choices`)
BY_NAME = {a.name: a for a in ACTIONS}
MAX_TEXT = 2000


def allowed(status: str, roles: set[str], claimable: bool) -> list[Action]:
    """The actions the state table allows `roles` (requester, owner) from `status`; `claimable`: the caller is a
    listed provider of an open Task and may claim it (owner and accepted in one change)."""
    out = []
    for action in ACTIONS:
        if action.needs == "provider":  # the requester's, from the states the table lets it re-offer
            if states.REQUESTER in roles and status in states.REOFFER_FROM:
                out.append(action)
        elif action.to is None:  # a milestone is the owner's (businessStatus); a note anyone's
            who = roles & {states.OWNER} if action.needs == "milestone" else roles
            if who and status in states.OPEN_STATES:
                out.append(action)
        elif claimable and action.to == states.CLAIM_TO and status in states.CLAIM_FROM:
            out.append(action)
        elif roles & states.allowed_parties(status, action.to):
            out.append(action)
    return out


def choices(action: Action) -> tuple[str, ...]:
    """The codes (gbv-referral-outcome) a person chooses from for `action`: a reason from the ValueSet the Task
    state table names for its status, or a milestone (the exchange's own codes, such as consent-withdrawn, are not
    offered)."""
    if action.needs == "milestone":
        value_set = states.MILESTONE_VALUE_SET
    elif action.needs == "reason" and action.to in states.REASON_VALUE_SETS:
        value_set = states.REASON_VALUE_SETS[action.to]
    else:
        return ()
    return tuple(code for system, code in codes.expansion(value_set) if system == codes.REFERRAL_OUTCOME)


def _coding(code: str | None) -> dict:
    return {"system": codes.REFERRAL_OUTCOME, "code": code, "display": codes.display(codes.REFERRAL_OUTCOME, code or "")}


def apply(task: dict, action: Action, text: str, claim_by: str | None, now: datetime,
          code: str | None = None) -> dict:
    """The Task after `action` (text: the outcome or note, or the words beside the chosen code). `claim_by`: the
    Organization reference that claims an open Task."""
    body = dict(task)
    text = text.strip()[:MAX_TEXT]
    if action.to is not None:
        body["status"] = action.to
    if claim_by is not None:
        body["owner"] = {"reference": claim_by}
    if action.needs == "reason":
        body["statusReason"] = {"coding": [_coding(code)], **({"text": text} if text else {})}
    elif action.needs == "milestone":  # the statuses the exchange set (overdue ...) stay beside it
        exchange_set = codes.value_set(states.EXCHANGE_STATUS_VALUE_SET)
        kept = [c for c in (task.get("businessStatus") or {}).get("coding") or []
                if isinstance(c, dict) and (c.get("system"), c.get("code")) in exchange_set]
        body["businessStatus"] = {"coding": [*kept, _coding(code)], **({"text": text} if text else {})}
    elif action.needs == "outcome":
        body["output"] = list(body.get("output") or []) + [{
            "type": {"coding": [{"system": codes.REFERRAL_CODES, "code": codes.RESULTING_ACTIVITY}]},
            "valueString": text}]
    elif action.needs == "note":
        body["note"] = list(body.get("note") or []) + [{"text": text, "time": fhir_instant(now)}]
    body["lastModified"] = fhir_instant(now)
    body.pop("meta", None)
    return body
