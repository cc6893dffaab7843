"""Who may change what (issue 11, class 1): the survivor's Patient, Consent and documents belong to the organisation
that recorded them; a receiver changes only its Task fields and adds its own outputs; nothing an open referral
points at is deleted. A party that may see but not change gets 403, a non-party what an unknown id gets (404; 405 for
a PUT: no update as create), each naming rule and element."""
from __future__ import annotations

import re
from pathlib import Path

from exchange.referral import authority, codes

from . import world
from .conftest import attach_document, change_task, rule_of
from .test_claim import _two_shelters
from .test_task_workflow import step


async def _referral_with_document(http, as_, ids, make_referral) -> dict[str, str]:  # noqa: ANN001
    ref = await make_referral(categories=("referral", "incident"))
    return await attach_document(http, as_(ids["hotline"]), ref, ids["hotline"])


def _refused(r, status: int, rule: str, expression: str) -> None:  # noqa: ANN001
    assert r.status_code == status, r.text
    assert rule_of(r) == rule
    assert r.json()["issue"][0]["expression"] == [expression]


async def test_receiver_cannot_update_senders_patient(http, as_, ids, make_referral):
    ref = await make_referral()
    shelter = as_(ids["shelter"])
    patient = (await http.get(f"/Patient/{ref['Patient']}", headers=shelter)).json()
    r = await http.put(f"/Patient/{ref['Patient']}", json={**patient, "gender": "other"}, headers=shelter)
    _refused(r, 403, "patient-recorder", "Patient")
    assert (await http.get(f"/Patient/{ref['Patient']}")).json()["meta"]["versionId"] == "1"


async def test_receiver_cannot_delete_senders_patient_or_document(http, as_, ids, make_referral):
    ref = await _referral_with_document(http, as_, ids, make_referral)
    shelter = as_(ids["shelter"])
    for rtype, rule in (("Patient", "patient-recorder"), ("DocumentReference", "document-recorder")):
        _refused(await http.delete(f"/{rtype}/{ref[rtype]}", headers=shelter), 403, rule, rtype)
        for who in ("hotline", "shelter"):  # nobody lost it
            assert (await http.get(f"/{rtype}/{ref[rtype]}", headers=as_(ids[who]))).status_code == 200, (rtype, who)


async def test_receiver_cannot_update_senders_document(http, as_, ids, make_referral):
    ref = await _referral_with_document(http, as_, ids, make_referral)
    shelter = as_(ids["shelter"])
    doc = (await http.get(f"/DocumentReference/{ref['DocumentReference']}", headers=shelter)).json()
    r = await http.put(f"/DocumentReference/{doc['id']}", json={**doc, "status": "entered-in-error"},
                       headers=shelter)
    _refused(r, 403, "document-recorder", "DocumentReference")


async def test_receiver_cannot_change_the_senders_records_in_a_transaction(http, as_, ids, make_referral):
    ref = await make_referral()
    shelter = as_(ids["shelter"])
    patient = (await http.get(f"/Patient/{ref['Patient']}", headers=shelter)).json()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {**patient, "gender": "other"}, "request": {"method": "PUT", "url": f"Patient/{ref['Patient']}"}}]}
    r = await http.post("", json=bundle, headers=shelter)
    assert r.status_code == 403 and rule_of(r) == "patient-recorder", r.text
    bundle["entry"] = [{"request": {"method": "DELETE", "url": f"Patient/{ref['Patient']}"}}]
    r = await http.post("", json=bundle, headers=shelter)
    assert r.status_code == 403 and rule_of(r) == "patient-recorder", r.text
    assert (await http.get(f"/Patient/{ref['Patient']}")).json()["meta"]["versionId"] == "1"


async def test_listed_provider_of_an_open_referral_cannot_change_her_patient(http, as_, ids, make_referral):
    await _two_shelters(http, ids, as_)
    ref = await make_referral(to_keys=("shelter", "shelter2"), owner=None)
    second = as_(ids["shelter2"])
    patient = (await http.get(f"/Patient/{ref['Patient']}", headers=second)).json()
    r = await http.put(f"/Patient/{ref['Patient']}", json={**patient, "gender": "other"}, headers=second)
    _refused(r, 403, "patient-recorder", "Patient")


async def test_non_party_writing_her_patient_gets_what_an_unknown_id_gets(http, as_, ids, make_referral):
    ref = await make_referral()
    other = as_(ids["other"])
    patient = (await http.get(f"/Patient/{ref['Patient']}")).json()
    # PUT: 405, as for an unknown id (no update as create); DELETE: 404
    assert (await http.put(f"/Patient/{ref['Patient']}", json=patient, headers=other)).status_code == 405
    assert (await http.delete(f"/Patient/{ref['Patient']}", headers=other)).status_code == 404


async def test_recorder_updates_its_own_patient(http, as_, ids, make_referral):
    ref = await make_referral()
    hotline = as_(ids["hotline"])
    patient = (await http.get(f"/Patient/{ref['Patient']}", headers=hotline)).json()
    r = await http.put(f"/Patient/{ref['Patient']}", json={**patient, "gender": "other"}, headers=hotline)
    assert r.status_code == 200, r.text


async def test_delete_of_what_an_open_referral_points_at_is_refused(http, as_, ids, make_referral):
    ref = await _referral_with_document(http, as_, ids, make_referral)
    hotline = as_(ids["hotline"])
    for rtype in ("Patient", "DocumentReference"):
        _refused(await http.delete(f"/{rtype}/{ref[rtype]}", headers=hotline), 409, "referral-in-use", rtype)
        assert (await http.get(f"/{rtype}/{ref[rtype]}", headers=as_(ids["shelter"]))).status_code == 200
    # once the referral is closed (its Task cancelled, its request completed) the recorder may delete
    assert (await change_task(http, hotline, ref["Task"], **step("cancelled"))).status_code == 200
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=hotline)).json()
    r = await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json={**request, "status": "revoked"},
                       headers=hotline)
    assert r.status_code == 200, r.text
    assert (await http.delete(f"/DocumentReference/{ref['DocumentReference']}", headers=hotline)).status_code == 204


async def test_receiver_adds_its_own_procedure_and_the_sender_cannot_change_it(http, as_, ids, make_referral):
    ref = await make_referral()
    shelter, hotline = as_(ids["shelter"]), as_(ids["hotline"])
    procedure = {"resourceType": "Procedure", "status": "completed", "subject": {"reference": f"Patient/{ref['Patient']}"},
                 "code": {"text": "Admitted"}}
    r = await http.post("/Procedure", json=procedure, headers=shelter)
    assert r.status_code == 201, r.text
    proc_id = r.json()["id"]
    output = [{"type": {"coding": [{"system": codes.REFERRAL_CODES, "code": codes.RESULTING_ACTIVITY}]},
               "valueReference": {"reference": f"Procedure/{proc_id}"}}]
    assert (await change_task(http, shelter, ref["Task"], status="accepted")).status_code == 200
    r = await change_task(http, shelter, ref["Task"], status="completed", output=output)
    assert r.status_code == 200, r.text
    stored = (await http.get(f"/Procedure/{proc_id}")).json()
    r = await http.put(f"/Procedure/{proc_id}", json={**stored, "status": "entered-in-error"}, headers=hotline)
    assert r.status_code == 405  # the receiver's own record: not shared with the sender; as for an unknown id
    r = await http.put(f"/Procedure/{proc_id}", json={**stored, "note": [{"text": "checked"}]}, headers=shelter)
    assert r.status_code == 200, r.text


async def test_owner_links_only_its_own_records_from_task_output(http, as_, ids, make_referral):
    ref = await _referral_with_document(http, as_, ids, make_referral)
    shelter = as_(ids["shelter"])
    output = [{"type": {"coding": [{"system": codes.REFERRAL_CODES, "code": codes.RESULTING_ACTIVITY}]},
               "valueReference": {"reference": f"DocumentReference/{ref['DocumentReference']}"}}]
    assert (await change_task(http, shelter, ref["Task"], status="accepted")).status_code == 200
    r = await change_task(http, shelter, ref["Task"], status="completed", output=output)
    _refused(r, 403, "task-output-own", "Task.output")  # the sender's document is not the shelter's outcome
    r = await http.post("/DocumentReference", json=world.document(ref["Patient"], ids["shelter"]), headers=shelter)
    assert r.status_code == 201, r.text
    output[0]["valueReference"]["reference"] = f"DocumentReference/{r.json()['id']}"
    r = await change_task(http, shelter, ref["Task"], status="completed", output=output)
    assert r.status_code == 200, r.text


async def test_owner_changes_only_its_task_fields(http, as_, ids, make_referral):
    ref = await make_referral()
    r = await change_task(http, as_(ids["shelter"]), ref["Task"], priority="stat")
    _refused(r, 403, "task-owner-fields", "Task.priority")


async def test_receiver_cannot_rewrite_the_referral(http, as_, ids, make_referral):
    ref = await make_referral()
    shelter = as_(ids["shelter"])
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=shelter)).json()
    r = await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json={**request, "priority": "stat"},
                       headers=shelter)
    _refused(r, 403, "referral-party", "ServiceRequest")


def test_partners_guide_shows_the_write_authority_table():
    guide = (Path(__file__).resolve().parents[2] / "docs" / "partners.md").read_text()
    section = re.search(r"<!-- who-may-change-what -->\n(.*?)<!-- /who-may-change-what -->", guide, re.S)
    assert section, "docs/partners.md lacks the generated 'Who may change what' table"
    assert section.group(1).strip() == authority.markdown_table().strip()
