"""The Task state machine over HTTP: every legal transition by the right party, every kind of illegal one refused
with the rule named and nothing changed."""
from __future__ import annotations

import pytest

from exchange.referral import codes, task_states

from . import world
from .conftest import change_task, rule_of

OUTPUT = [{"type": {"coding": [{"system": codes.REFERRAL_CODES, "code": codes.RESULTING_ACTIVITY}]},
           "valueString": "Admitted to the shelter"}]
# a code of each final state's ValueSet (task_states.REASON_VALUE_SETS)
REASONS = {"rejected": world.reason("no-capacity", "No capacity for this need"),
           "cancelled": world.reason("no-longer-needed"), "failed": world.reason("lost-contact")}


def step(status: str) -> dict:
    change = {"status": status}
    if status in task_states.REASON_REQUIRED:
        change["statusReason"] = REASONS[status]
    if status == "completed":
        change["output"] = OUTPUT
    return change


OWNER_PATHS = [
    ["received", "accepted", "in-progress", "on-hold", "in-progress", "completed"],
    ["accepted", "on-hold", "completed"],
    ["accepted", "completed"],
    ["received", "rejected"],
    ["rejected"],
    ["accepted", "failed"],
    ["accepted", "in-progress", "failed"],
    ["accepted", "on-hold", "failed"],
    ["received", "cancelled"],
    ["accepted", "in-progress", "cancelled"],
]


@pytest.mark.parametrize("path", OWNER_PATHS, ids=["-".join(p) for p in OWNER_PATHS])
async def test_owner_walks_legal_transitions(http, as_, ids, make_referral, path):
    ref = await make_referral()
    shelter = as_(ids["shelter"])
    for version, status in enumerate(path, start=2):
        r = await change_task(http, shelter, ref["Task"], **step(status))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == status and r.json()["meta"]["versionId"] == str(version)
    seen = (await http.get(f"/Task/{ref['Task']}", headers=as_(ids["hotline"]))).json()
    assert seen["status"] == path[-1]  # the requester sees the outcome
    if path[-1] == "completed":
        assert seen["output"] == OUTPUT
    if path[-1] in task_states.REASON_REQUIRED:
        assert seen["statusReason"] == REASONS[path[-1]]


@pytest.mark.parametrize("path", [["cancelled"], ["accepted*", "cancelled"], ["accepted*", "completed*",
                                                                               "entered-in-error"],
                                  ["entered-in-error"]])
async def test_requester_walks_its_transitions(http, as_, ids, make_referral, path):
    ref = await make_referral()
    for status in path:
        who = as_(ids["shelter"]) if status.endswith("*") else as_(ids["hotline"])
        r = await change_task(http, who, ref["Task"], **step(status.rstrip("*")))
        assert r.status_code == 200, r.text


async def test_requester_sends_a_draft(http, as_, ids, make_referral):
    ref = await make_referral(task_status="draft")
    r = await change_task(http, as_(ids["shelter"]), ref["Task"], status="requested")
    assert r.status_code == 422 and rule_of(r) == "task-party"
    r = await change_task(http, as_(ids["hotline"]), ref["Task"], status="requested")
    assert r.status_code == 200, r.text


ILLEGAL = [
    # (who, changes, status, rule, expression)
    ("hotline", {"status": "accepted"}, 422, "task-party", "Task.status"),
    ("hotline", {"status": "received"}, 422, "task-party", "Task.status"),
    ("shelter", {"status": "completed", "output": OUTPUT}, 409, "task-transition", "Task.status"),
    ("shelter", {"status": "in-progress"}, 409, "task-transition", "Task.status"),
    ("shelter", {"status": "ready"}, 409, "task-transition", "Task.status"),
    ("shelter", {"status": "requested", "owner": None}, 422, "task-frozen-element", "Task.owner"),
    ("shelter", {"focus": {"reference": "ServiceRequest/other"}}, 422, "task-frozen-element", "Task.focus"),
    ("shelter", {"for": {"reference": "Patient/other"}}, 422, "task-frozen-element", "Task.for"),
    ("shelter", {"intent": "plan"}, 422, "task-frozen-element", "Task.intent"),
    ("hotline", {"requester": {"reference": "Organization/x"}}, 403, None, "Task.requester"),  # AccessRule
    ("hotline", {"owner": {"reference": "Organization/x"}}, 422, "task-frozen-element", "Task.owner"),
    ("shelter", {"priority": "stat"}, 403, "task-owner-fields", "Task.priority"),  # authority: sees, may not change
    ("shelter", {"description": "changed"}, 403, "task-owner-fields", "Task.description"),
    ("shelter", {"status": "rejected"}, 422, "task-status-reason", "Task.statusReason"),
    ("hotline", {"status": "cancelled"}, 422, "task-status-reason", "Task.statusReason"),
]


@pytest.mark.parametrize("who,changes,status,rule,expression", ILLEGAL,
                         ids=[f"{c[0]}-{c[3] or c[2]}-{'-'.join(c[1])}" for c in ILLEGAL])
async def test_illegal_change_is_refused_and_changes_nothing(http, as_, ids, make_referral, who, changes, status,
                                                             rule, expression):
    ref = await make_referral()
    before = (await http.get(f"/Task/{ref['Task']}")).json()
    r = await change_task(http, as_(ids[who]), ref["Task"], **changes)
    assert r.status_code == status, r.text
    if rule:
        assert rule_of(r) == rule
    assert r.json()["issue"][0]["expression"] == [expression]
    after = (await http.get(f"/Task/{ref['Task']}")).json()
    assert after == before


async def test_final_state_does_not_change(http, as_, ids, make_referral):
    ref = await make_referral()
    shelter, hotline = as_(ids["shelter"]), as_(ids["hotline"])
    for status in ("accepted", "completed"):
        assert (await change_task(http, shelter, ref["Task"], **step(status))).status_code == 200
    before = (await http.get(f"/Task/{ref['Task']}")).json()
    for who, changes, code, rule in [
        (shelter, {"status": "in-progress"}, 409, "task-transition"),
        (shelter, {"note": [{"text": "more"}]}, 409, "task-final"),
        (shelter, step("failed"), 409, "task-transition"),
        (hotline, step("cancelled"), 409, "task-transition"),
        (shelter, {"status": "entered-in-error"}, 422, "task-party"),
    ]:
        r = await change_task(http, who, ref["Task"], **changes)
        assert (r.status_code, rule_of(r)) == (code, rule), r.text
    assert (await http.get(f"/Task/{ref['Task']}")).json() == before
    r = await change_task(http, hotline, ref["Task"], status="entered-in-error")
    assert r.status_code == 200, r.text


async def test_completion_needs_output(http, as_, ids, make_referral):
    ref = await make_referral()
    shelter = as_(ids["shelter"])
    assert (await change_task(http, shelter, ref["Task"], status="accepted")).status_code == 200
    r = await change_task(http, shelter, ref["Task"], status="completed")
    assert r.status_code == 422 and rule_of(r) == "task-output"


async def test_owner_may_write_its_fields_without_a_transition(http, as_, ids, make_referral):
    ref = await make_referral()
    r = await change_task(http, as_(ids["shelter"]), ref["Task"], note=[{"text": "Bed reserved"}],
                          businessStatus=world.reason("waitlisted", "bed reserved"))
    assert r.status_code == 200, r.text


async def test_task_is_created_only_as_draft_or_requested_by_the_requester(http, as_, ids, make_referral):
    r = await make_referral(task_status="accepted", expect=409)
    assert rule_of(r) == "task-transition"
    assert (await http.get("/Patient")).json()["total"] == 0  # the whole transaction rolled back
    ref = await make_referral()
    task = (await http.get(f"/Task/{ref['Task']}")).json()
    del task["id"], task["meta"]
    r = await http.post("/Task", json=task, headers=as_(ids["shelter"]))
    assert r.status_code == 403  # only the requester creates its Task (exchange.auth.access.AccessRule)


async def test_unrelated_organisation_cannot_see_or_change_the_task(http, as_, ids, make_referral):
    ref = await make_referral()
    task = (await http.get(f"/Task/{ref['Task']}")).json()
    r = await http.put(f"/Task/{ref['Task']}", json={**task, "status": "accepted"}, headers=as_(ids["other"]))
    assert r.status_code == 405  # as for an unknown Task: existence does not leak
    assert (await http.get(f"/Task/{ref['Task']}", headers=as_(ids["other"]))).status_code == 404


async def test_partner_cannot_delete_referral_resources(http, as_, ids, make_referral):
    ref = await make_referral()
    r = await http.delete(f"/Task/{ref['Task']}", headers=as_(ids["hotline"]))
    assert r.status_code == 422 and rule_of(r) == "referral-no-delete"


def test_table_matches_the_guide():
    owner, requester = {task_states.OWNER}, {task_states.REQUESTER}
    assert task_states.allowed_parties("draft", "requested") == requester
    assert task_states.allowed_parties("requested", "accepted") == owner
    assert task_states.allowed_parties("on-hold", "in-progress") == owner
    assert task_states.allowed_parties("received", "cancelled") == owner | requester
    assert task_states.allowed_parties("completed", "entered-in-error") == requester
    assert task_states.allowed_parties("completed", "cancelled") == frozenset()
    assert task_states.allowed_parties("requested", "completed") == frozenset()
    assert len(task_states.TRANSITIONS) == 16 + 6 + 10
