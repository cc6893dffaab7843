"""Re-offer in one step over HTTP (`POST Task/[id]/$reoffer`): the requester sends a declined, cancelled or failed
referral to a new provider or back to the pool; a party that is not the requester gets 403, a stranger 404, a Task
that is not final 409, bad parameters 400; nothing is created by a refusal."""
from __future__ import annotations

import pytest

from exchange.referral import codes, deadlines

from . import world
from .conftest import change_task, rule_of
from .test_claim import _claim, _two_shelters


def _params(**named) -> dict:  # noqa: ANN003
    out = []
    for name, refs in named.items():
        for ref in refs if isinstance(refs, list) else [refs]:
            out.append({"name": name, "valueReference": {"reference": ref}})
    return {"resourceType": "Parameters", **({"parameter": out} if out else {})}


async def _tasks_of(http, request_id: str) -> list[dict]:  # noqa: ANN001
    found = (await http.get("/Task", params={"focus": f"ServiceRequest/{request_id}"})).json()
    return [e["resource"] for e in found.get("entry", [])]


async def _declined(http, as_, ids, make_referral, **kwargs) -> dict:  # noqa: ANN001, ANN003
    await _two_shelters(http, ids, as_)
    recipients = [f"Organization/{ids['shelter']}", f"Organization/{ids['shelter2']}"]
    ref = await make_referral(recipients=recipients, **kwargs)
    r = await change_task(http, as_(ids["shelter"]), ref["Task"], status="rejected",
                          statusReason=world.reason("no-capacity"))
    assert r.status_code == 200, r.text
    return ref


async def test_the_requester_reoffers_a_declined_referral_to_another_provider(http, as_, ids, make_referral):
    ref = await _declined(http, as_, ids, make_referral)
    hotline, shelter2 = as_(ids["hotline"]), as_(ids["shelter2"])
    assert (await http.get(f"/Task/{ref['Task']}", headers=shelter2)).status_code == 404  # not its referral yet
    r = await http.post(f"/Task/{ref['Task']}/$reoffer", json=_params(owner=f"Organization/{ids['shelter2']}"),
                        headers=hotline)
    assert r.status_code == 201, r.text
    new = r.json()
    assert r.headers["Location"].split("/fhir/")[1] == f"Task/{new['id']}/_history/1"
    assert (new["status"], new["owner"], new["focus"]) == (
        "requested", {"reference": f"Organization/{ids['shelter2']}"}, {"reference": f"ServiceRequest/{ref['ServiceRequest']}"})
    assert [e for e in new["extension"] if e["url"] == codes.EXT_REOFFER_OF] == [
        {"url": codes.EXT_REOFFER_OF, "valueReference": {"reference": f"Task/{ref['Task']}"}}]
    old = (await http.get(f"/Task/{ref['Task']}", headers=hotline)).json()
    # sent again: deadlines of its own, counted from the re-offer (the exchange's, not copied from the old Task)
    assert all(deadlines.stored_of(new)) and deadlines.stored_of(new)[0] >= deadlines.stored_of(old)[0]
    assert "statusReason" not in new and new["id"] != ref["Task"]
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=hotline)).json()
    assert request["performer"] == [{"reference": f"Organization/{ids['shelter2']}"}]
    assert (await http.get(f"/Task/{new['id']}", headers=shelter2)).status_code == 200  # the new provider has it
    assert (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=shelter2)).status_code == 200
    old = (await http.get(f"/Task/{ref['Task']}", headers=hotline)).json()
    assert old["status"] == "rejected" and old["statusReason"] == world.reason("no-capacity")  # it stands
    accepted = await change_task(http, shelter2, new["id"], status="accepted")
    assert accepted.status_code == 200, accepted.text
    events = (await http.get("/AuditEvent", params={"subtype": "reoffer"})).json()["entry"]
    assert [(e["resource"]["entity"][0]["what"]["reference"], e["resource"]["agent"][0]["who"]["reference"])
            for e in events] == [(f"Task/{ref['Task']}/_history/2", f"Organization/{ids['hotline']}")]
    created = (await http.get("/AuditEvent", params={"entity": f"Task/{new['id']}", "action": "C"})).json()
    assert created["total"] == 1


async def test_a_failed_referral_goes_back_to_the_pool_the_requester_names(http, as_, ids, make_referral):
    await _two_shelters(http, ids, as_)
    both = [f"Organization/{ids['shelter']}", f"Organization/{ids['shelter2']}"]
    ref = await make_referral(to_keys=("shelter", "shelter2"), owner=None)
    shelter = as_(ids["shelter"])
    assert (await change_task(http, shelter, ref["Task"], if_match=True, **_claim(ids, "shelter"))).status_code == 200
    r = await change_task(http, shelter, ref["Task"], status="failed", statusReason=world.reason("lost-contact"))
    assert r.status_code == 200, r.text
    # the claim narrowed the request to the shelter that then failed: with no pool named, nobody is left
    empty = await http.post(f"/Task/{ref['Task']}/$reoffer", json=_params(), headers=as_(ids["hotline"]))
    assert empty.status_code == 400 and "Parameters" in empty.json()["issue"][0]["expression"][0]
    r = await http.post(f"/Task/{ref['Task']}/$reoffer", json=_params(performer=both), headers=as_(ids["hotline"]))
    assert r.status_code == 201, r.text
    new = r.json()
    assert "owner" not in new and new["status"] == "requested"
    for key in ("shelter", "shelter2"):
        assert (await http.get(f"/Task/{new['id']}", headers=as_(ids[key]))).status_code == 200, key
    claim = await change_task(http, as_(ids["shelter2"]), new["id"], if_match=True, **_claim(ids, "shelter2"))
    assert claim.status_code == 200, claim.text


async def test_a_cancelled_open_referral_goes_back_to_the_same_pool_by_default(http, as_, ids, make_referral):
    await _two_shelters(http, ids, as_)
    ref = await make_referral(to_keys=("shelter", "shelter2"), owner=None)
    hotline = as_(ids["hotline"])
    r = await change_task(http, hotline, ref["Task"], status="cancelled", statusReason=world.reason("no-response"))
    assert r.status_code == 200, r.text
    r = await http.post(f"/Task/{ref['Task']}/$reoffer", json=_params(), headers=hotline)
    assert r.status_code == 201, r.text
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=hotline)).json()
    assert request["meta"]["versionId"] == "1"  # the pool is unchanged: the request is not rewritten
    assert (await http.get(f"/Task/{r.json()['id']}", headers=as_(ids["shelter2"]))).status_code == 200


async def test_only_the_requester_may_reoffer_and_a_stranger_learns_nothing(http, as_, ids, make_referral):
    ref = await _declined(http, as_, ids, make_referral)
    body = _params(owner=f"Organization/{ids['shelter2']}")
    r = await http.post(f"/Task/{ref['Task']}/$reoffer", json=body, headers=as_(ids["shelter"]))
    assert r.status_code == 403 and rule_of(r) == "task-reoffer"
    assert r.json()["issue"][0]["expression"] == ["Task.requester"]
    await as_.add(ids["other"])
    stranger = await http.post(f"/Task/{ref['Task']}/$reoffer", json=body, headers=as_(ids["other"]))
    missing = await http.post("/Task/00000000-0000-4000-8000-000000000000/$reoffer", json=body,
                              headers=as_(ids["other"]))
    assert stranger.status_code == missing.status_code == 404
    assert stranger.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]
    assert [t["id"] for t in await _tasks_of(http, ref["ServiceRequest"])] == [ref["Task"]]


@pytest.mark.parametrize("steps", [[], ["accepted"], ["accepted", "completed"]], ids=["requested", "accepted",
                                                                                   "completed"])
async def test_a_task_that_is_not_declined_cancelled_or_failed_is_not_reoffered(http, as_, ids, make_referral, steps):
    ref = await make_referral()
    for status in steps:
        extra = {"output": [{"type": world.coding(codes.REFERRAL_CODES, codes.RESULTING_ACTIVITY),
                             "valueString": "Admitted"}]} if status == "completed" else {}
        assert (await change_task(http, as_(ids["shelter"]), ref["Task"], status=status, **extra)).status_code == 200
    r = await http.post(f"/Task/{ref['Task']}/$reoffer", json=_params(), headers=as_(ids["hotline"]))
    assert r.status_code == 409 and rule_of(r) == "task-reoffer"
    assert r.json()["issue"][0]["expression"] == ["Task.status"]
    assert len(await _tasks_of(http, ref["ServiceRequest"])) == 1


async def test_a_referral_already_reoffered_is_not_reoffered_twice(http, as_, ids, make_referral):
    ref = await _declined(http, as_, ids, make_referral)
    body = _params(owner=f"Organization/{ids['shelter2']}")
    assert (await http.post(f"/Task/{ref['Task']}/$reoffer", json=body, headers=as_(ids["hotline"]))).status_code == 201
    again = await http.post(f"/Task/{ref['Task']}/$reoffer", json=body, headers=as_(ids["hotline"]))
    assert again.status_code == 409 and rule_of(again) == "task-reoffer"
    assert again.json()["issue"][0]["expression"] == ["Task.focus"]
    assert len(await _tasks_of(http, ref["ServiceRequest"])) == 2


BAD = {
    "not-parameters": ({"resourceType": "Task"}, "Parameters"),
    "unknown-parameter": ({"resourceType": "Parameters", "parameter": [{"name": "status", "valueCode": "x"}]},
                          "Parameters.parameter[0]"),
    "owner-not-a-provider": (_params(owner="Patient/abc"), "Parameters.parameter[0].valueReference"),
    "owner-and-pool": (_params(owner="Organization/a", performer="Organization/b"), "Parameters.parameter"),
    "two-owners": (_params(owner=["Organization/a", "Organization/b"]), "Parameters.parameter[1]"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
async def test_bad_parameters_are_400_and_create_nothing(http, as_, ids, make_referral, kind):
    ref = await _declined(http, as_, ids, make_referral)
    body, expression = BAD[kind]
    r = await http.post(f"/Task/{ref['Task']}/$reoffer", json=body, headers=as_(ids["hotline"]))
    assert r.status_code == 400, r.text
    assert r.json()["issue"][0]["expression"] == [expression]
    assert "abc" not in r.text
    assert len(await _tasks_of(http, ref["ServiceRequest"])) == 1


async def test_the_referral_rules_still_decide_who_may_receive_it(http, as_, ids, make_referral):
    """The legal-aid NGO offers no shelter (routing); the clinic is not in her Consent (consent); both 422, and the
    request keeps its performers."""
    ref = await _declined(http, as_, ids, make_referral)
    hotline = as_(ids["hotline"])
    for key in ("legal", "clinic"):
        r = await http.post(f"/Task/{ref['Task']}/$reoffer", json=_params(owner=f"Organization/{ids[key]}"),
                            headers=hotline)
        assert r.status_code == 422, (key, r.text)
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=hotline)).json()
    assert request["meta"]["versionId"] == "1"
    assert len(await _tasks_of(http, ref["ServiceRequest"])) == 1


async def test_after_she_withdraws_her_consent_the_referral_is_not_reoffered(http, as_, ids, make_referral):
    ref = await make_referral()
    hotline = as_(ids["hotline"])
    consent = (await http.get(f"/Consent/{ref['Consent']}", headers=hotline)).json()
    assert (await http.put(f"/Consent/{ref['Consent']}", json={**consent, "status": "inactive"},
                           headers=hotline)).status_code == 200
    task = (await http.get(f"/Task/{ref['Task']}", headers=hotline)).json()
    assert task["status"] == "cancelled"
    assert codes.codes_in(task["statusReason"], codes.REFERRAL_CODES) == [codes.CONSENT_WITHDRAWN]
    r = await http.post(f"/Task/{ref['Task']}/$reoffer", json=_params(owner=f"Organization/{ids['shelter']}"),
                        headers=hotline)
    assert r.status_code == 422, r.text
    assert rule_of(r).startswith("consent")
    assert len(await _tasks_of(http, ref["ServiceRequest"])) == 1
