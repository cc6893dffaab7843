"""Coded answers over HTTP: rejected, cancelled and failed need a statusReason code of that state's ValueSet (the
table in task_states), milestones in businessStatus come from gbv-referral-milestone; every refusal names the
element and the rule, never the value, and stores nothing."""
from __future__ import annotations

import pytest

from exchange.referral import codes, task_states

from . import world
from .conftest import change_task, rule_of

OUTCOME = codes.REFERRAL_OUTCOME
SECRET = "Fatima hides at her sister's"  # words a partner might type: never echoed

# (who, the steps before, the final status)
FINAL = {"rejected": ("shelter", (), "rejected"), "failed": ("shelter", ("accepted",), "failed"),
         "cancelled": ("hotline", (), "cancelled")}


async def _at(http, as_, ids, make_referral, steps) -> dict:  # noqa: ANN001
    ref = await make_referral()
    for status in steps:
        r = await change_task(http, as_(ids["shelter"]), ref["Task"], status=status)
        assert r.status_code == 200, r.text
    return ref


def test_each_final_state_names_its_published_value_set():
    assert set(task_states.REASON_VALUE_SETS) == task_states.REASON_REQUIRED == {"rejected", "cancelled", "failed"}
    for value_set in (*task_states.REASON_VALUE_SETS.values(), task_states.MILESTONE_VALUE_SET):
        assert codes.load("ValueSet", value_set)["url"] == f"{codes.BASE}/ValueSet/{value_set}"
    assert (OUTCOME, "no-capacity") in codes.value_set("gbv-decline-reason")
    assert (OUTCOME, "did-not-attend") not in codes.value_set("gbv-decline-reason")
    assert (codes.REFERRAL_CODES, codes.CONSENT_WITHDRAWN) in codes.value_set("gbv-cancel-reason")


@pytest.mark.parametrize("final,code", [("rejected", "no-capacity"), ("rejected", "survivor-declined"),
                                        ("failed", "did-not-attend"), ("cancelled", "chose-another-service")])
async def test_a_code_of_the_states_value_set_is_accepted_with_or_without_words(http, as_, ids, make_referral,
                                                                                final, code):
    who, steps, status = FINAL[final]
    ref = await _at(http, as_, ids, make_referral, steps)
    reason = world.reason(code, "she will call back next week")
    r = await change_task(http, as_(ids[who]), ref["Task"], status=status, statusReason=reason)
    assert r.status_code == 200, r.text
    seen = (await http.get(f"/Task/{ref['Task']}", headers=as_(ids["hotline"]))).json()
    assert (seen["status"], seen["statusReason"]) == (status, reason)


BAD_REASONS = {
    "missing": None,
    "text-only": {"text": SECRET},
    "unknown-code": world.reason("she-was-scared", SECRET),
    "foreign-system-only": {"coding": [{"system": "urn:example:local", "code": "full"}], "text": SECRET},
    "wrong-value-set": world.reason("service-delivered"),  # a milestone, not a reason
}
WRONG_STATE = {"rejected": "did-not-attend", "failed": "service-not-offered", "cancelled": "no-capacity"}


@pytest.mark.parametrize("final", sorted(FINAL))
@pytest.mark.parametrize("kind", [*BAD_REASONS, "another-states-code", "right-code-beside-a-wrong-one"])
async def test_a_final_state_without_a_code_of_its_value_set_is_refused_and_nothing_is_stored(
        http, as_, ids, make_referral, final, kind):
    who, steps, status = FINAL[final]
    ref = await _at(http, as_, ids, make_referral, steps)
    if kind == "another-states-code":
        reason = world.reason(WRONG_STATE[final], SECRET)
    elif kind == "right-code-beside-a-wrong-one":
        right = next(iter(sorted(c for s, c in codes.value_set(task_states.REASON_VALUE_SETS[status]) if s == OUTCOME)))
        reason = {"coding": [*world.reason(right)["coding"], *world.reason("service-delivered")["coding"]]}
    else:
        reason = BAD_REASONS[kind]
    before = (await http.get(f"/Task/{ref['Task']}")).json()
    r = await change_task(http, as_(ids[who]), ref["Task"], status=status, statusReason=reason)
    assert r.status_code == 422, r.text
    assert rule_of(r) == "task-status-reason"
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["Task.statusReason"]
    assert f"ValueSet/{task_states.REASON_VALUE_SETS[status]}" in issue["diagnostics"]
    for echoed in (SECRET, "she-was-scared", WRONG_STATE[final], "urn:example:local"):
        assert echoed not in r.text
    assert (await http.get(f"/Task/{ref['Task']}")).json() == before


async def test_a_transaction_that_rejects_without_a_code_is_refused_whole(http, as_, ids, make_referral):
    ref = await make_referral()
    shelter = as_(ids["shelter"])
    task = (await http.get(f"/Task/{ref['Task']}", headers=shelter)).json()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": {**task, "status": "rejected", "statusReason": {"text": SECRET}},
        "request": {"method": "PUT", "url": f"Task/{ref['Task']}"}}]}
    r = await http.post("", json=bundle, headers=shelter)
    assert r.status_code == 422, r.text
    assert rule_of(r) == "task-status-reason" and SECRET not in r.text
    assert (await http.get(f"/Task/{ref['Task']}")).json()["status"] == "requested"


@pytest.mark.parametrize("milestone", ["contacted-safely", "appointment-set", "attended", "did-not-attend",
                                       "service-delivered"])
async def test_the_owner_records_a_milestone_in_business_status(http, as_, ids, make_referral, milestone):
    ref = await _at(http, as_, ids, make_referral, ("accepted",))
    status = world.reason(milestone, "by phone, at the safe time")
    r = await change_task(http, as_(ids["shelter"]), ref["Task"], businessStatus=status)
    assert r.status_code == 200, r.text
    found = (await http.get("/Task", params={"business-status": f"{OUTCOME}|{milestone}"},
                            headers=as_(ids["hotline"]))).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [ref["Task"]]


BAD_MILESTONES = {
    "text-only": {"text": SECRET},
    "unknown-code": world.reason("she-was-scared"),
    "a-reason-not-a-milestone": world.reason("no-capacity"),
    "foreign-system-only": {"coding": [{"system": "urn:example:local", "code": "waiting"}]},
    "exchange-set-code": {"coding": [{"system": codes.REFERRAL_CODES, "code": codes.OVERDUE}]},
}


@pytest.mark.parametrize("kind", sorted(BAD_MILESTONES))
async def test_a_business_status_without_a_milestone_code_is_refused(http, as_, ids, make_referral, kind):
    ref = await _at(http, as_, ids, make_referral, ("accepted",))
    before = (await http.get(f"/Task/{ref['Task']}")).json()
    r = await change_task(http, as_(ids["shelter"]), ref["Task"], businessStatus=BAD_MILESTONES[kind])
    assert r.status_code == 422, r.text
    assert rule_of(r) == "task-business-status"
    assert r.json()["issue"][0]["expression"] == ["Task.businessStatus"]
    assert SECRET not in r.text and "she-was-scared" not in r.text
    assert (await http.get(f"/Task/{ref['Task']}")).json() == before


async def test_a_milestone_may_sit_beside_the_exchanges_own_status(http, as_, ids, make_referral):
    """The overdue sweep (the exchange) marked it; the owner keeps that coding and adds its milestone."""
    ref = await _at(http, as_, ids, make_referral, ("accepted",))
    overdue = {"coding": [{"system": codes.REFERRAL_CODES, "code": codes.OVERDUE}]}
    assert (await change_task(http, {}, ref["Task"], businessStatus=overdue)).status_code == 200  # the exchange
    both = {"coding": [*overdue["coding"], *world.reason("contact-attempted")["coding"]], "text": "no answer"}
    r = await change_task(http, as_(ids["shelter"]), ref["Task"], businessStatus=both)
    assert r.status_code == 200, r.text
