"""After a claim (or when the requester drops a performer) the other listed providers lose the referral: 404 on the
Task, the ServiceRequest, the survivor's Patient, her Consent and the documents, nothing in search, includes or
history; the requester and the claimant keep everything, and later writes do not bring the others back."""
from __future__ import annotations

from tests.referral import world
from tests.referral.conftest import attach_document, change_task
from tests.referral.test_claim import _claim, _two_shelters


async def _open_referral_with_document(http, as_, ids, make_referral) -> dict[str, str]:  # noqa: ANN001
    """An open referral from the hotline to both shelters, with a DocumentReference in its supportingInfo."""
    await _two_shelters(http, ids, as_)
    ref = await make_referral(to_keys=("shelter", "shelter2"), owner=None, categories=("referral", "incident"))
    return await attach_document(http, as_(ids["hotline"]), ref, ids["hotline"])


async def _sees_all(http, headers: dict, ref: dict[str, str]) -> None:  # noqa: ANN001
    for rtype, rid in ref.items():
        assert (await http.get(f"/{rtype}/{rid}", headers=headers)).status_code == 200, rtype


async def _sees_nothing(http, headers: dict, ref: dict[str, str]) -> None:  # noqa: ANN001
    for rtype, rid in ref.items():
        assert (await http.get(f"/{rtype}/{rid}", headers=headers)).status_code == 404, rtype
        assert (await http.get(f"/{rtype}/{rid}/_history", headers=headers)).status_code == 404, rtype
        assert (await http.get(f"/{rtype}/{rid}/_history/1", headers=headers)).status_code == 404, rtype
        found = (await http.get(f"/{rtype}", params={"_id": rid}, headers=headers)).json()
        assert found.get("entry", []) == [], rtype
    searches = [("Task", {"_include": ["Task:focus", "Task:patient"]}),
                ("ServiceRequest", {"_include": "ServiceRequest:patient", "_revinclude": "Task:focus"}),
                ("Patient", {"_revinclude": ["Task:patient", "ServiceRequest:patient"]}),
                ("Consent", {}), ("DocumentReference", {})]
    for rtype, params in searches:
        found = (await http.get(f"/{rtype}", params=params, headers=headers)).json()
        assert found.get("entry", []) == [], (rtype, found)
    history = (await http.get("/Task/_history", headers=headers))
    if history.status_code == 200:
        assert history.json().get("entry", []) == []


async def test_claim_takes_the_referral_from_the_other_listed_providers(http, as_, ids, make_referral):
    ref = await _open_referral_with_document(http, as_, ids, make_referral)
    a, b, hotline = as_(ids["shelter"]), as_(ids["shelter2"]), as_(ids["hotline"])
    for who in (a, b, hotline):
        await _sees_all(http, who, ref)
    r = await change_task(http, a, ref["Task"], if_match=True, **_claim(ids, "shelter"))
    assert r.status_code == 200, r.text
    await _sees_nothing(http, b, ref)
    for who in (a, hotline):
        await _sees_all(http, who, ref)
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=hotline)).json()
    assert request["meta"]["versionId"] == "3"  # created, document added, narrowed by the exchange
    assert request["performer"] == [{"reference": f"Organization/{ids['shelter']}"}]
    history = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}/_history", headers=a)).json()
    assert history["total"] == 3
    # the loser's claim finds nothing to claim
    task = (await http.get(f"/Task/{ref['Task']}", headers=a)).json()
    r = await http.put(f"/Task/{ref['Task']}", json={**task, **_claim(ids, "shelter2")},
                       headers={**b, "If-Match": f'W/"{task["meta"]["versionId"]}"'})
    assert r.status_code == 405, r.text  # as for an unknown Task
    # later writes by the owner and the requester do not bring the other shelter back
    r = await change_task(http, a, ref["Task"], status="in-progress")
    assert r.status_code == 200, r.text
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=hotline)).json()
    r = await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json={**request, "priority": "asap"},
                       headers=hotline)
    assert r.status_code == 200, r.text
    await _sees_nothing(http, b, ref)
    await _sees_all(http, a, ref)


async def test_claim_keeps_the_claimants_service_reference(http, as_, ids, make_referral):
    await _two_shelters(http, ids, as_)
    ref = await make_referral(to_keys=(f"HealthcareService/{ids['svc-shelter']}", "shelter2"), owner=None)
    r = await change_task(http, as_(ids["shelter"]), ref["Task"], if_match=True, **_claim(ids, "shelter"))
    assert r.status_code == 200, r.text
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}")).json()
    assert request["performer"] == [{"reference": f"HealthcareService/{ids['svc-shelter']}"}]
    assert (await http.get(f"/Patient/{ref['Patient']}", headers=as_(ids["shelter2"]))).status_code == 404


async def test_another_referral_keeps_sharing_the_survivor(http, as_, ids, make_referral):
    """The second shelter loses this referral, not the survivor it holds through a referral of its own."""
    ref = await _open_referral_with_document(http, as_, ids, make_referral)
    hotline = as_(ids["hotline"])
    own = world.service_request(f"Patient/{ref['Patient']}", ids["hotline"], [f"Organization/{ids['shelter2']}"],
                                "safety-shelter", "safety-shelter", f"Consent/{ref['Consent']}")
    r = await http.post("/ServiceRequest", json=own, headers=hotline)
    assert r.status_code == 201, r.text
    r = await change_task(http, as_(ids["shelter"]), ref["Task"], if_match=True, **_claim(ids, "shelter"))
    assert r.status_code == 200, r.text
    b = as_(ids["shelter2"])
    for rtype in ("Patient", "Consent"):
        assert (await http.get(f"/{rtype}/{ref[rtype]}", headers=b)).status_code == 200, rtype
    for rtype in ("Task", "ServiceRequest", "DocumentReference"):
        assert (await http.get(f"/{rtype}/{ref[rtype]}", headers=b)).status_code == 404, rtype


async def test_requester_dropping_a_performer_takes_the_referral_from_it(http, as_, ids, make_referral):
    ref = await _open_referral_with_document(http, as_, ids, make_referral)
    hotline, a, b = as_(ids["hotline"]), as_(ids["shelter"]), as_(ids["shelter2"])
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=hotline)).json()
    request["performer"] = [{"reference": f"Organization/{ids['shelter']}"}]
    r = await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json=request, headers=hotline)
    assert r.status_code == 200, r.text
    await _sees_nothing(http, b, ref)
    await _sees_all(http, a, ref)
    # the remaining provider claims; nothing comes back to the dropped one
    r = await change_task(http, a, ref["Task"], if_match=True, **_claim(ids, "shelter"))
    assert r.status_code == 200, r.text
    await _sees_nothing(http, b, ref)
    task = (await http.get(f"/Task/{ref['Task']}", headers=a)).json()
    r = await http.put(f"/Task/{ref['Task']}", json={**task, **_claim(ids, "shelter2")},
                       headers={**b, "If-Match": f'W/"{task["meta"]["versionId"]}"'})
    assert r.status_code == 405


async def test_an_owner_dropped_from_performer_keeps_its_task(http, as_, ids, make_referral):
    """Decision: the owner of a claimed Task keeps the Task and the request (it must still be able to close it)."""
    await _two_shelters(http, ids, as_)
    ref = await make_referral(to_keys=("shelter", "shelter2"), owner=None)
    hotline = as_(ids["hotline"])
    r = await change_task(http, as_(ids["shelter"]), ref["Task"], if_match=True, **_claim(ids, "shelter"))
    assert r.status_code == 200, r.text
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=hotline)).json()
    request["performer"] = [{"reference": f"Organization/{ids['shelter2']}"}]
    r = await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json=request, headers=hotline)
    assert r.status_code == 200, r.text
    a, b = as_(ids["shelter"]), as_(ids["shelter2"])
    for rtype in ("Task", "ServiceRequest", "Patient"):
        assert (await http.get(f"/{rtype}/{ref[rtype]}", headers=a)).status_code == 200, rtype
    assert (await http.get(f"/Task/{ref['Task']}", headers=b)).status_code == 404  # not the owner of a claimed Task
    r = await change_task(http, a, ref["Task"], status="cancelled", statusReason=world.reason("no-longer-needed"))
    assert r.status_code == 200, r.text
