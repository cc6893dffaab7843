"""The referral Task state machine: ONE table, the only place that says which status change is legal and by whom.

From HL7 Gravity SDOH Clinical Care (closed-loop referrals), adapted for GBV (see GUIDE.md section 4). The rule
checks in `exchange.referral.task_rules` read these tables; nothing else decides a Task transition.
"""
from __future__ import annotations

REQUESTER = "requester"
OWNER = "owner"

# The states a Task may be created in, by the requester.
CREATE_STATES: frozenset[str] = frozenset({"draft", "requested"})

FINAL_STATES: frozenset[str] = frozenset({"completed", "rejected", "cancelled", "failed", "entered-in-error"})
OPEN_STATES: frozenset[str] = frozenset({"draft", "requested", "received", "accepted", "in-progress", "on-hold"})

# (from, to) -> the parties that may make the change.
TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    ("draft", "requested"): frozenset({REQUESTER}),
    ("requested", "received"): frozenset({OWNER}),
    ("requested", "accepted"): frozenset({OWNER}),
    ("requested", "rejected"): frozenset({OWNER}),
    ("received", "accepted"): frozenset({OWNER}),
    ("received", "rejected"): frozenset({OWNER}),
    ("accepted", "in-progress"): frozenset({OWNER}),
    ("accepted", "on-hold"): frozenset({OWNER}),
    ("accepted", "completed"): frozenset({OWNER}),
    ("accepted", "failed"): frozenset({OWNER}),
    ("in-progress", "on-hold"): frozenset({OWNER}),
    ("on-hold", "in-progress"): frozenset({OWNER}),
    ("in-progress", "completed"): frozenset({OWNER}),
    ("in-progress", "failed"): frozenset({OWNER}),
    ("on-hold", "completed"): frozenset({OWNER}),
    ("on-hold", "failed"): frozenset({OWNER}),
    **{(state, "cancelled"): frozenset({REQUESTER, OWNER}) for state in OPEN_STATES},
    **{(state, "entered-in-error"): frozenset({REQUESTER})
       for state in OPEN_STATES | FINAL_STATES if state != "entered-in-error"},
}

# Moving to these states needs `statusReason` with a code of the ValueSet named here (conformance/ValueSet-*.json;
# text optional): why it was declined, cancelled or failed, coded so that partners and statistics read the same.
REASON_VALUE_SETS: dict[str, str] = {
    "rejected": "gbv-decline-reason",
    "cancelled": "gbv-cancel-reason",
    "failed": "gbv-failure-reason",
}
REASON_REQUIRED: frozenset[str] = frozenset(REASON_VALUE_SETS)

# A businessStatus a write sets or changes carries codes of these ValueSets only, at least one: the owner's
# milestones, and the statuses the exchange itself sets (overdue, consent-withdrawn), which a partner may keep
# but not add.
MILESTONE_VALUE_SET = "gbv-referral-milestone"
EXCHANGE_STATUS_VALUE_SET = "gbv-task-business-status"

# A final Task of these states can be re-offered by its requester in one step (`Task/[id]/$reoffer`): a new Task
# for the same ServiceRequest, to a named provider or back to the pool of listed providers.
REOFFER_FROM: frozenset[str] = frozenset({"rejected", "cancelled", "failed"})
REOFFER_STATUS = "requested"

# Elements nobody changes after creation (owner: except when claiming an open Task, see CLAIM_FROM).
FROZEN_ELEMENTS: tuple[str, ...] = ("requester", "owner", "for", "focus", "intent")

# The only elements the owner may change (meta and lastModified record the change itself).
OWNER_WRITABLE: frozenset[str] = frozenset({"status", "statusReason", "businessStatus", "output", "note",
                                            "lastModified", "meta"})

# An open Task (no owner) is claimed by setting `owner` and status `accepted` in one update, from these states.
CLAIM_FROM: frozenset[str] = frozenset({"requested", "received"})
CLAIM_TO = "accepted"


def allowed_parties(from_state: str, to_state: str) -> frozenset[str]:
    """Who may move a Task from `from_state` to `to_state` (empty: nobody)."""
    return TRANSITIONS.get((from_state, to_state), frozenset())


def is_final(state: str) -> bool:
    return state in FINAL_STATES
