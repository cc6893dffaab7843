"""The emergency exception, once used: flagged in the exchange log, listed for auditors, told to the coordinator.

A ServiceRequest written with the emergency-exception extension (new, or newly invoked or with a new reason on an
update) leaves, in the same transaction as the write, one more AuditEvent: subtype exchange-event|emergency-exception,
the ServiceRequest as entity, the referring organisation as agent, and purposeOfEvent v3-ActReason|BTG plus the coded
reason (codes only: nothing about her). Auditors find them with `AuditEvent?subtype=emergency-exception` or
`exchange audit emergencies` (`exchange.audit.emergencies`). The coordinator's alert is queued from the same event (`exchange.web.alerts`).
"""
from __future__ import annotations

from exchange.referral import consent_rules
from exchange.store.values import StoredResource
from exchange.kernel.change import Record
from exchange.kernel.unit import Event

INTERACTION = "emergency-exception"  # the AuditEvent subtype (CodeSystem exchange-event)
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
BREAK_THE_GLASS = {"system": ACT_REASON, "code": "BTG", "display": "break the glass"}


def newly_invoked(stored: StoredResource, previous: StoredResource | None) -> str | None:
    """The exception's reason when this write invokes it (a create, or an update that adds it or changes its
    reason); None otherwise."""
    reason = consent_rules.emergency_reason(stored.resource)
    if not reason:
        return None
    if previous is not None and consent_rules.emergency_reason(previous.resource) == reason:
        return None
    return reason


def follow_ups(stored: StoredResource, previous: StoredResource | None) -> list[Record]:
    """The exception's AuditEvent when this write invokes it (a `Record` follow-up, exchange.kernel.change)."""
    reason = newly_invoked(stored, previous)
    if reason is None:
        return []
    return [Record(Event(INTERACTION, "E", "ServiceRequest", stored.id, stored.version_id,
                         purpose=(BREAK_THE_GLASS, {"system": consent_rules.CONSENT_CODES, "code": reason})))]
