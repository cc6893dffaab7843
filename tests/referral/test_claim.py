"""Open referrals: any listed provider may claim the Task (owner + accepted in one If-Match update); of two
concurrent claims exactly one wins, on SQLite and on PostgreSQL. What the others lose:
tests/need_to_know/test_claim.py."""
from __future__ import annotations

import asyncio

import pytest

from . import world
from .conftest import change_task, rule_of


async def test_open_task_is_visible_to_listed_providers_only(http, as_, ids, make_referral):
    ref = await make_referral(to_keys=("shelter", "legal"), code="safety-shelter", owner=None, expect=422)
    assert rule_of(ref) == "referral-routing"  # the legal aid organisation offers no shelter
    await _two_shelters(http, ids, as_)
    ref = await make_referral(to_keys=("shelter", "shelter2"), owner=None)
    for org in ("shelter", "shelter2", "hotline"):
        assert (await http.get(f"/Task/{ref['Task']}", headers=as_(ids[org]))).status_code == 200
    assert (await http.get(f"/Task/{ref['Task']}", headers=as_(ids["other"]))).status_code == 404
    found = (await http.get("/Task", params={"status": "requested"}, headers=as_(ids["shelter2"]))).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [ref["Task"]]


async def _two_shelters(http, ids, as_) -> None:  # noqa: ANN001
    ids["shelter2"] = (await http.post("/Organization", json={"resourceType": "Organization",
                                                               "name": "Second shelter"})).json()["id"]
    r = await http.post("/HealthcareService", json=world.service(ids["shelter2"], ["safety-shelter"]))
    assert r.status_code == 201
    await as_.add(ids["shelter2"])


def _claim(ids, org: str) -> dict:  # noqa: ANN001
    return {"owner": {"reference": f"Organization/{ids[org]}"}, "status": "accepted"}


async def test_claim_needs_if_match(http, as_, ids, make_referral):
    await _two_shelters(http, ids, as_)
    ref = await make_referral(to_keys=("shelter", "shelter2"), owner=None)
    r = await change_task(http, as_(ids["shelter"]), ref["Task"], **_claim(ids, "shelter"))
    assert r.status_code == 428 and rule_of(r) == "task-claim"
    assert (await http.get(f"/Task/{ref['Task']}")).json()["meta"]["versionId"] == "1"


async def test_claim_rules(http, as_, ids, make_referral):
    await _two_shelters(http, ids, as_)
    ref = await make_referral(to_keys=("shelter", "shelter2"), owner=None)
    shelter = as_(ids["shelter"])
    cases = [
        (_claim(ids, "shelter2"), 422),  # claiming for someone else
        ({"owner": {"reference": f"Organization/{ids['shelter']}"}, "status": "received"}, 422),  # not accepted
        ({"status": "accepted"}, 422),  # accepting without claiming: not the owner
    ]
    for changes, code in cases:
        r = await change_task(http, shelter, ref["Task"], if_match=True, **changes)
        assert r.status_code == code, r.text
        assert rule_of(r) in ("task-claim", "task-party")
    r = await change_task(http, as_(ids["hotline"]), ref["Task"], if_match=True, **_claim(ids, "hotline"))
    assert r.status_code == 422 and rule_of(r) == "task-claim"  # the requester is not a listed provider
    r = await change_task(http, shelter, ref["Task"], if_match=True, **_claim(ids, "shelter"))
    assert r.status_code == 200, r.text
    assert r.json()["owner"]["reference"] == f"Organization/{ids['shelter']}"
    task = r.json()  # a claimed Task is not claimed again: the other provider no longer has it at all
    r = await http.put(f"/Task/{ref['Task']}", json={**task, "owner": {"reference": f"Organization/{ids['shelter2']}"}},
                       headers={**as_(ids["shelter2"]), "If-Match": f'W/"{task["meta"]["versionId"]}"'})
    assert r.status_code == 405, r.text  # as for an unknown Task: no update as create
    r = await change_task(http, shelter, ref["Task"], if_match=True, owner={
        "reference": f"Organization/{ids['shelter2']}"})
    assert r.status_code == 422 and rule_of(r) == "task-frozen-element"  # nor handed on by its owner


@pytest.mark.parametrize("round_", range(3))
async def test_two_concurrent_claims_exactly_one_wins(http, as_, ids, make_referral, round_):
    await _two_shelters(http, ids, as_)
    ref = await make_referral(to_keys=("shelter", "shelter2"), owner=None)
    task = (await http.get(f"/Task/{ref['Task']}")).json()

    async def claim(org: str):  # noqa: ANN202
        body = {**task, **_claim(ids, org)}
        return await http.put(f"/Task/{ref['Task']}", json=body, headers={**as_(ids[org]), "If-Match": 'W/"1"'})

    results = await asyncio.gather(claim("shelter"), claim("shelter2"))
    codes = sorted(r.status_code for r in results)
    # the loser gets 412 when it raced the winner's write, 405 (as for an unknown Task) when the winner's claim
    # (which took the referral from the other listed providers) committed before the loser's read of the Task
    assert codes in ([200, 405], [200, 412]), [r.text for r in results]
    winner = next(r for r in results if r.status_code == 200).json()
    stored = (await http.get(f"/Task/{ref['Task']}")).json()
    assert stored["meta"]["versionId"] == "2"
    assert stored["owner"] == winner["owner"] and stored["status"] == "accepted"
    history = (await http.get(f"/Task/{ref['Task']}/_history")).json()
    assert history["total"] == 2
