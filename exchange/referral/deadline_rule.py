"""The deadlines as a write rule: a partner cannot set or move them, the exchange stores them when a referral is sent.

`check` refuses (422, rule `deadline-set-by-exchange`) a partner's Task whose acknowledgement or action deadline
differs from what the exchange stored (absent is fine: a client may leave them out, they are kept). `complete` (the
kernel's step for the server's own elements, `exchange.change`) writes them: computed from the deadline table when
the Task is sent (stored as `requested` from nothing or from another status), carried over from the stored version
otherwise. The exchange itself (system context: a re-route, the CLI) may set them; when it leaves them out, they are
computed or carried over the same way.
"""
from __future__ import annotations

from typing import Mapping

from exchange.change import Change, Reads
from exchange.fhir.references import references_in, split_reference
from exchange.referral import deadlines
from exchange.referral.refusal import refuse
from exchange.store import repository

RULE = "deadline-set-by-exchange"


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


class DeadlineRule:
    async def check(self, change: Change, reads: Reads) -> None:
        if change.resource_type != "Task" or change.deleted or change.who.is_system:
            return
        stored = deadlines.stored_of(change.before)
        sent = deadlines.stored_of(change.after)
        for given, kept, where in zip(sent, stored, ("Task.extension('acknowledgement-due')",
                                                     "Task.restriction.period.end")):
            if given is not None and given != kept:
                refuse(RULE, "the exchange sets the acknowledgement and action deadlines from the referral's "
                             "priority and service type; leave them out or send them as stored", where)

    async def complete(self, change: Change, reads: Reads) -> Mapping | None:
        if change.resource_type != "Task" or change.deleted:
            return None
        after = change.after
        given = deadlines.stored_of(after)
        if change.who.is_system and given != (None, None):
            return None  # the exchange's own values
        if _sent(change):
            request = await _request(reads, after)
            now = repository.utcnow().replace(microsecond=0)
            values = deadlines.compute(reads.exchange.settings.referral_deadlines, request, after, now).stored()
        else:
            values = deadlines.stored_of(change.before)
        if values == given:
            return None
        return deadlines.with_stored(after, *values)

