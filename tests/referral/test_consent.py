"""Consent first: no referral without her active Consent for that recipient and that data; withdrawal cuts the
receiver's access at once and cancels her open referrals; her contact choices never reach an index or a message."""
from __future__ import annotations

from sqlalchemy import select

from exchange.referral import codes
from exchange.store.tables import search_index

from . import world
from .conftest import change_task, rule_of


async def _nothing_stored(http) -> None:  # noqa: ANN001
    for rtype in ("Patient", "Consent", "ServiceRequest", "Task"):
        assert (await http.get(f"/{rtype}")).json()["total"] == 0, rtype


async def test_referral_without_consent_is_refused(http, ids, make_referral):
    r = await make_referral(with_consent=False, expect=422)
    assert rule_of(r) == "consent-required"
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[1].resource.supportingInfo"]
    await _nothing_stored(http)


async def test_consent_naming_another_organisation_is_refused(http, ids, make_referral):
    r = await make_referral(recipients=[f"Organization/{ids['clinic']}"], expect=422)
    assert rule_of(r) == "consent-required"
    assert f"Organization/{ids['shelter']}" in r.json()["issue"][0]["diagnostics"]
    await _nothing_stored(http)


async def test_withdrawn_consent_is_refused(http, ids, make_referral):
    r = await make_referral(consent_status="inactive", expect=422)
    assert rule_of(r) == "consent-required"
    await _nothing_stored(http)


async def test_consent_naming_a_service_is_refused_as_r4_allows_only_organisations(http, ids, make_referral):
    r = await make_referral(recipients=[f"HealthcareService/{ids['svc-shelter']}"], expect=400)
    issue = r.json()["issue"][0]
    assert issue["diagnostics"].split(": ")[1] == "r4-reference"
    assert issue["expression"] == ["Bundle.entry[1].resource.provision.actor[0].reference.reference"]
    await _nothing_stored(http)


async def test_consent_for_the_organisation_covers_a_referral_to_its_service(http, ids, make_referral):
    ref = await make_referral(to_keys=(f"HealthcareService/{ids['svc-shelter']}",),
                              recipients=[f"Organization/{ids['shelter']}"])
    assert (await http.get(f"/Consent/{ref['Consent']}")).json()["provision"]["actor"][0]["reference"] == {
        "reference": f"Organization/{ids['shelter']}"}
    assert ref["Task"]


async def test_consent_without_policy_or_policy_rule_breaks_r4_ppc_1(http, as_, ids):
    bundle = world.referral_bundle(ids, [f"Organization/{ids['shelter']}"])
    del bundle["entry"][1]["resource"]["policyRule"]
    r = await http.post("", json=bundle, headers=as_(ids["hotline"]))
    assert r.status_code == 400, r.text
    issue = r.json()["issue"][0]
    assert "Consent ppc-1" in issue["diagnostics"] and issue["expression"] == ["Bundle.entry[1].resource.policyRule"]
    await _nothing_stored(http)


async def test_consent_must_cover_the_data_sent(http, as_, ids, make_referral):
    r = await make_referral(patient_extra={"name": [{"text": "Real Name"}]}, expect=422)
    assert rule_of(r) == "consent-coverage" and "identity" in r.json()["issue"][0]["diagnostics"]
    assert "Real Name" not in r.text
    await _nothing_stored(http)
    ref = await make_referral(patient_extra={"name": [{"text": "Real Name"}]}, categories=("referral", "identity"))
    patient = (await http.get(f"/Patient/{ref['Patient']}")).json()
    patient["telecom"] = [{"system": "phone", "value": "+962700000000"}]
    r = await http.put(f"/Patient/{ref['Patient']}", json=patient, headers=as_(ids["hotline"]))
    assert r.status_code == 422 and rule_of(r) == "consent-coverage" and "contact" in r.text
    assert "+962700000000" not in r.text


async def test_minimum_necessary_patient(http, as_, ids, make_referral):
    r = await make_referral(patient_extra={"maritalStatus": {"text": "married"}}, expect=422)
    assert rule_of(r) == "minimum-necessary"
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.maritalStatus"]
    r = await make_referral(patient_extra={"contact": [{"name": {"text": "Husband"}}]}, expect=422)
    assert rule_of(r) == "minimum-necessary"


async def test_withdrawal_cuts_the_receivers_access_at_once(http, as_, ids, make_referral):
    ref = await make_referral()
    shelter, hotline = as_(ids["shelter"]), as_(ids["hotline"])
    for rtype in ("Patient", "ServiceRequest", "Consent", "Task"):
        assert (await http.get(f"/{rtype}/{ref[rtype]}", headers=shelter)).status_code == 200, rtype
    assert (await change_task(http, shelter, ref["Task"], status="accepted")).status_code == 200
    consent = (await http.get(f"/Consent/{ref['Consent']}", headers=hotline)).json()
    r = await http.put(f"/Consent/{ref['Consent']}", json={**consent, "status": "inactive"}, headers=hotline)
    assert r.status_code == 200, r.text
    for rtype in ("Patient", "ServiceRequest", "Consent"):
        assert (await http.get(f"/{rtype}/{ref[rtype]}", headers=shelter)).status_code == 404, rtype
        assert (await http.get(f"/{rtype}", headers=shelter)).json()["total"] == 0, rtype
        assert (await http.get(f"/{rtype}/{ref[rtype]}", headers=hotline)).status_code == 200, rtype
    task = await http.get(f"/Task/{ref['Task']}", headers=shelter)
    assert task.status_code == 200  # the Task stays visible and says why it stopped
    task = task.json()
    assert task["status"] == "cancelled"
    assert "Consent withdrawn" in task["statusReason"]["text"]
    assert codes.CONSENT_WITHDRAWN in [c["code"] for c in task["businessStatus"]["coding"]]
    included = (await http.get("/Task", params={"_include": "Task:patient"}, headers=shelter)).json()
    assert [e["resource"]["resourceType"] for e in included["entry"]] == ["Task"]
    history = (await http.get(f"/Task/{ref['Task']}/_history", headers=hotline)).json()
    assert history["total"] == 3  # requested, accepted, cancelled on withdrawal: versioned like any change


async def test_withdrawal_marks_closed_tasks_and_keeps_other_recipients(http, as_, ids, make_referral):
    first = await make_referral()
    second = await make_referral(to_keys=("clinic",), code="clinical-management-of-rape")
    shelter, clinic, hotline = as_(ids["shelter"]), as_(ids["clinic"]), as_(ids["hotline"])
    for status in ("accepted", "completed"):
        changes = {"status": status}
        if status == "completed":
            changes["output"] = [{"type": {"text": "resulting activity"}, "valueString": "Care given"}]
        assert (await change_task(http, clinic, second["Task"], **changes)).status_code == 200
    consent = (await http.get(f"/Consent/{second['Consent']}", headers=hotline)).json()
    r = await http.put(f"/Consent/{second['Consent']}", json={**consent, "status": "inactive"}, headers=hotline)
    assert r.status_code == 200
    task = (await http.get(f"/Task/{second['Task']}", headers=clinic)).json()
    assert task["status"] == "completed"  # a closed Task keeps its status, marked consent-withdrawn
    assert task["businessStatus"]["coding"][0]["code"] == codes.CONSENT_WITHDRAWN
    assert (await http.get(f"/Patient/{second['Patient']}", headers=clinic)).status_code == 404
    assert (await http.get(f"/Patient/{first['Patient']}", headers=shelter)).status_code == 200
    assert (await http.get(f"/Task/{first['Task']}", headers=shelter)).json()["status"] == "requested"
    r = await http.put(f"/Consent/{second['Consent']}", json={**consent, "status": "active"}, headers=hotline)
    assert r.status_code == 409 and rule_of(r) == "consent-reactivation"


async def test_later_task_write_does_not_reshare_after_withdrawal(http, as_, ids, make_referral):
    ref = await make_referral()
    shelter, hotline = as_(ids["shelter"]), as_(ids["hotline"])
    consent = (await http.get(f"/Consent/{ref['Consent']}", headers=hotline)).json()
    await http.put(f"/Consent/{ref['Consent']}", json={**consent, "status": "inactive"}, headers=hotline)
    r = await change_task(http, hotline, ref["Task"], status="entered-in-error")
    assert r.status_code == 200, r.text
    assert (await http.get(f"/Patient/{ref['Patient']}", headers=shelter)).status_code == 404
    assert (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=shelter)).status_code == 404


async def test_only_the_custodian_changes_a_consent(http, as_, ids, make_referral):
    ref = await make_referral()
    consent = (await http.get(f"/Consent/{ref['Consent']}")).json()
    r = await http.put(f"/Consent/{ref['Consent']}", json={**consent, "status": "inactive"},
                       headers=as_(ids["shelter"]))
    assert r.status_code == 403 and rule_of(r) == "consent-custodian"  # a party that sees it may not change it
    assert (await http.get(f"/Consent/{ref['Consent']}")).json()["meta"]["versionId"] == "1"


async def test_safe_contact_never_reaches_the_search_index_or_messages(http, as_, ids, make_referral, exchange):
    ref = await make_referral()
    async with exchange.db.transaction() as conn:
        rows = (await conn.execute(select(search_index))).all()
    indexed = " ".join(str(v) for row in rows for v in row)
    assert world.CODE_WORD not in indexed and world.SAFE_PHONE not in indexed
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=as_(ids["shelter"]))).json()
    assert world.CODE_WORD in str(request["extension"])  # it travels with the referral to the receiver
    assert codes.CONTACT_PROHIBITED in str(request["orderDetail"])
    r = await http.get("/ServiceRequest", params={"order-detail": codes.CONTACT_PROHIBITED},
                       headers={**as_(ids["shelter"]), "Prefer": "handling=strict"})
    assert r.status_code == 400  # no search parameter reaches her contact choices
    # contradicting "do not contact her" with a direct method is refused without echoing her details
    bad = world.service_request(f"Patient/{ref['Patient']}", ids["hotline"], [f"Organization/{ids['shelter']}"],
                                "safety-shelter", "safety-shelter", f"Consent/{ref['Consent']}")
    bad["extension"][0]["extension"][0]["valueCode"] = "phone"
    r = await http.post("/ServiceRequest", json=bad, headers=as_(ids["hotline"]))
    assert r.status_code == 422 and rule_of(r) == "safe-contact"
    assert world.CODE_WORD not in r.text and world.SAFE_PHONE not in r.text


async def test_referral_cannot_point_at_what_the_sender_cannot_see(http, as_, ids, make_referral):
    ref = await make_referral()
    body = world.service_request(f"Patient/{ref['Patient']}", ids["clinic"], [f"Organization/{ids['shelter']}"],
                                 "safety-shelter", "safety-shelter", f"Consent/{ref['Consent']}")
    r = await http.post("/ServiceRequest", json=body, headers=as_(ids["clinic"]))
    assert r.status_code == 422 and rule_of(r) == "referral-reference"
    body["requester"] = {"reference": f"Organization/{ids['hotline']}"}
    r = await http.post("/ServiceRequest", json=body, headers=as_(ids["clinic"]))
    assert r.status_code == 403  # a partner sends only its own referrals (exchange.auth.access.AccessRule)
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}")).json()
    r = await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json={**request, "priority": "stat"},
                       headers=as_(ids["shelter"]))
    assert r.status_code == 403 and rule_of(r) == "referral-party"  # the receiver does not rewrite the referral
