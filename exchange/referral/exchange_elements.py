"""The Task elements the exchange sets, as a write rule: a partner can neither set nor move them.

They are the deadlines (`exchange.referral.deadlines`: the `acknowledgement-due` extension and
`restriction.period.end`) and the escalation (`exchange.referral.escalation`: the `escalation` extension: when the
referral was escalated, to whom, a re-route the coordinator proposed). `check` refuses (422, rule
`deadline-set-by-exchange` or `escalation-set-by-exchange`) a partner's Task that carries other values than the
stored ones (absent is fine: a client may leave them out, they are kept). `complete` (the kernel's step for the
server's own elements, `exchange.kernel.change`) writes them: the deadlines computed from the deadline table when the Task
is sent (stored as `requested` from nothing or from another status), everything else carried over from the stored
version. The exchange itself (system context: the sweep, a re-route, the CLI) may set them; what it leaves out is
computed or carried over the same way.
"""
from __future__ import annotations

from typing import Mapping

from exchange.kernel.change import Change, Reads
from exchange.fhir.references import references_in, split_reference
from exchange.referral import codes, deadlines
from exchange.referral.refusal import refuse
from exchange.store import clock
DEADLINE_RULE = "deadline-set-by-exchange"
ESCALATION_RULE = "escalation-set-by-exchange"


def escalation_of(task: Mapping | None) -> Mapping | None:
    return next((e for e in (task or {}).get("extension") or []
                 if isinstance(e, Mapping) and e.get("url") == codes.EXT_ESCALATION), None)


def with_escalation(task: Mapping, escalation: Mapping | None) -> dict:
    """`task` with exactly this escalation extension (None: without one)."""
    extensions = [e for e in task.get("extension") or []
                  if not (isinstance(e, Mapping) and e.get("url") == codes.EXT_ESCALATION)]
    if escalation is not None:
        extensions.append(dict(escalation))
    out = {k: v for k, v in task.items() if k != "extension"}
    if extensions:
        out["extension"] = extensions
    return out


def _sent(change: Change) -> bool:
    after = change.after or {}
    return after.get("status") == "requested" and (change.before or {}).get("status") != "requested"


async def _request(reads: Reads, task: Mapping) -> Mapping:
    for reference in references_in(task.get("focus")):
        target = split_reference(reference)
        if target and target[0] == "ServiceRequest":
            found = await reads.repo.read(*target)  # in the unit's cache: the referral rules read it already
            if found is not None and not found.deleted:
                return found.resource
    return {}


class ExchangeElementsRule:
    async def check(self, change: Change, reads: Reads) -> None:
        if change.resource_type != "Task" or change.deleted or change.who.is_system:
            return
        stored = deadlines.stored_of(change.before)
        given = deadlines.stored_of(change.after)
        for sent, kept, where in zip(given, stored, ("Task.extension('acknowledgement-due')",
                                                     "Task.restriction.period.end")):
            if sent is not None and sent != kept:
                refuse(DEADLINE_RULE, "the exchange sets the acknowledgement and action deadlines from the "
                                      "referral's priority and service type; leave them out or send them as stored",
                       where)
        escalation = escalation_of(change.after)
        if escalation is not None and escalation != escalation_of(change.before):
            refuse(ESCALATION_RULE, "the exchange records the escalation and a proposed re-route; leave the "
                                    "extension out or send it as stored", "Task.extension('escalation')")

    async def complete(self, change: Change, reads: Reads) -> Mapping | None:
        if change.resource_type != "Task" or change.deleted:
            return None
        after = change.after
        body = after
        given = deadlines.stored_of(after)
        if not (change.who.is_system and given != (None, None)):  # else: the exchange's own values
            if _sent(change):
                request = await _request(reads, after)
                now = clock.utcnow().replace(microsecond=0)
                values = deadlines.compute(reads.exchange.settings.referral_deadlines, request, after, now).stored()
            else:
                values = deadlines.stored_of(change.before)
            if values != given:
                body = deadlines.with_stored(body, *values)
        if escalation_of(after) is None and not change.who.is_system and escalation_of(change.before) is not None:
            body = with_escalation(body, escalation_of(change.before))
        return None if body is after else body
