"""Smaller holes (issue 11, class 10): identifiers that identify her need consent for identity; a document or
Procedure points only at a Patient its writer can see; a listed provider cannot claim an open referral and cancel
it in one Bundle; the retention purge takes her data from every resource of a closed referral."""
from __future__ import annotations

import json

from sqlalchemy import text

from exchange.referral import codes
from tests.audit.conftest import cli

from . import world
from .conftest import rule_of
from .test_claim import _claim, _two_shelters

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
CASE = {"system": "https://amal-hotline.example/case", "value": "HTL-1234"}
PASSPORT = "P9988776"
CLINICAL = "Post-exposure prophylaxis started"


async def test_identifier_other_than_the_case_code_needs_consent_for_identity(http, ids, make_referral):
    for identifiers in ([CASE, {"type": {"coding": [{"system": V2_0203, "code": "PPN"}]}, "value": PASSPORT}],
                        [CASE, {"system": "https://unhcr.example/progres", "value": PASSPORT}],
                        [{"type": {"coding": [{"system": V2_0203, "code": "NI"}]}, "value": PASSPORT}]):
        r = await make_referral(patient_extra={"identifier": identifiers}, expect=422)
        assert rule_of(r) == "consent-coverage" and "identity" in r.json()["issue"][0]["diagnostics"], r.text
        assert PASSPORT not in r.text
    ref = await make_referral(patient_extra={"identifier": [CASE, {"system": "https://unhcr.example/progres",
                                                                   "value": PASSPORT}]},
                              categories=("referral", "identity"))
    assert ref["Patient"]
    assert await make_referral(patient_extra={"identifier": [CASE]})  # her case code alone: no identity


async def test_document_and_procedure_cannot_point_at_a_patient_the_writer_cannot_see(http, as_, ids, make_referral):
    ref = await make_referral()
    other = as_(ids["other"])
    r = await http.post("/DocumentReference", json=world.document(ref["Patient"], ids["other"]), headers=other)
    assert r.status_code == 422 and rule_of(r) == "referral-reference", r.text
    assert r.json()["issue"][0]["expression"] == ["DocumentReference.subject"]
    procedure = {"resourceType": "Procedure", "status": "completed",
                 "subject": {"reference": f"Patient/{ref['Patient']}"}, "code": {"text": "Counselling"}}
    r = await http.post("/Procedure", json=procedure, headers=other)
    assert r.status_code == 422 and rule_of(r) == "referral-reference", r.text
    assert r.json()["issue"][0]["expression"] == ["Procedure.subject"]
    assert (await http.get("/DocumentReference")).json()["total"] == 0
    assert (await http.get("/Procedure")).json()["total"] == 0
    r = await http.post("/Procedure", json=procedure, headers=as_(ids["shelter"]))  # a party may
    assert r.status_code == 201, r.text


async def test_listed_provider_cannot_claim_an_open_referral_and_cancel_it_in_one_step(http, as_, ids, make_referral):
    await _two_shelters(http, ids, as_)
    ref = await make_referral(to_keys=("shelter", "shelter2"), owner=None)
    shelter = as_(ids["shelter"])
    task = (await http.get(f"/Task/{ref['Task']}", headers=shelter)).json()
    claimed = {**task, **_claim(ids, "shelter")}
    cancelled = {**claimed, "status": "cancelled", "statusReason": world.reason("wrong-service")}
    url = f"Task/{ref['Task']}"
    for kind in ("transaction", "batch"):
        bundle = {"resourceType": "Bundle", "type": kind, "entry": [
            {"resource": claimed, "request": {"method": "PUT", "url": url, "ifMatch": 'W/"1"'}},
            {"resource": cancelled, "request": {"method": "PUT", "url": url}}]}
        r = await http.post("", json=bundle, headers=shelter)
        if kind == "transaction":
            assert r.status_code == 400, r.text
            assert r.json()["issue"][0]["expression"] == ["Bundle.entry[1].request.url"]
            assert ref["Task"] not in r.text
        else:
            assert r.status_code == 200, r.text
            assert [e["response"]["status"][:3] for e in r.json()["entry"]] == ["400", "400"]
    assert (await http.get(f"/Task/{ref['Task']}")).json()["meta"]["versionId"] == "1"
    assert (await http.get(f"/Task/{ref['Task']}", headers=as_(ids["shelter2"]))).status_code == 200


async def test_purge_removes_her_data_from_every_resource_of_a_closed_referral(http, as_, ids, make_referral,
                                                                               settings, exchange):
    ref = await make_referral()
    shelter = as_(ids["shelter"])
    procedure = {"resourceType": "Procedure", "status": "completed",
                 "subject": {"reference": f"Patient/{ref['Patient']}"}, "code": {"text": CLINICAL},
                 "note": [{"text": CLINICAL}]}
    r = await http.post("/Procedure", json=procedure, headers=shelter)
    assert r.status_code == 201, r.text
    proc_id = r.json()["id"]
    output = [{"type": {"coding": [{"system": codes.REFERRAL_CODES, "code": codes.RESULTING_ACTIVITY}]},
               "valueReference": {"reference": f"Procedure/{proc_id}"}}]
    task = (await http.get(f"/Task/{ref['Task']}", headers=shelter)).json()
    for change in ({"status": "accepted"}, {"status": "completed", "output": output}):
        task = {**task, **change}
        r = await http.put(f"/Task/{ref['Task']}", json=task, headers=shelter)
        assert r.status_code == 200, r.text
        task = r.json()
    done = await cli("audit", "purge", "--json", "--days", "0", "--database-url", settings.database_url)
    assert done.exit_code == 0, done.output
    assert f"Procedure/{proc_id}" in json.loads(done.output)["purged"]
    assert (await http.get(f"/Procedure/{proc_id}")).status_code == 410
    async with exchange.db.engine.connect() as conn:
        contents = (await conn.execute(text("SELECT content FROM resource_version"))).scalars().all()
    assert not any(CLINICAL in c for c in contents)
