"""Consent cannot be skipped (issue 11, class 2): every write that makes an organisation a party to her data passes
the consent and routing checks whatever the ServiceRequest's status; a referral created closed is refused; the
Consent a referral names is about the referral's own Patient."""
from __future__ import annotations

from . import world
from .conftest import rule_of

CLOSED = ("completed", "revoked", "entered-in-error", "unknown")


async def test_referral_created_closed_is_refused(http, as_, ids, make_referral):
    for status in CLOSED:  # her name, no consent for identity: a check skipped would share it
        r = await make_referral(request_extra={"status": status}, patient_extra={"name": [{"text": "Real Name"}]},
                                expect=422)
        assert rule_of(r) == "referral-created-closed", r.text
        assert r.json()["issue"][0]["expression"] == ["Bundle.entry[2].resource.status"]
    shelter = as_(ids["shelter"])
    for rtype in ("Patient", "ServiceRequest"):
        assert (await http.get(f"/{rtype}")).json()["total"] == 0, rtype
        assert (await http.get(f"/{rtype}", headers=shelter)).json()["total"] == 0, rtype


async def test_closed_referral_cannot_add_a_receiver_without_consent(http, as_, ids, make_referral):
    ref = await make_referral()
    hotline, clinic = as_(ids["hotline"]), as_(ids["clinic"])
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=hotline)).json()
    request["status"] = "completed"
    r = await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json=request, headers=hotline)
    assert r.status_code == 200, r.text
    request = r.json()
    request["performer"].append({"reference": f"Organization/{ids['clinic']}"})
    r = await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json=request, headers=hotline)
    assert r.status_code == 422 and rule_of(r) == "referral-routing", r.text  # the clinic offers no shelter
    assert (await http.get(f"/Patient/{ref['Patient']}", headers=clinic)).status_code == 404
    assert (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=clinic)).status_code == 404


async def test_closed_referral_cannot_add_a_routed_receiver_without_consent(http, as_, ids, make_referral):
    """Routing passes (the clinic offers the service), so only the consent check can stop the disclosure."""
    ref = await make_referral(to_keys=("clinic",), code="clinical-management-of-rape")
    hotline = as_(ids["hotline"])
    r = await http.post("/HealthcareService", json=world.service(ids["legal"], ["medical-care"], name="Legal clinic"))
    assert r.status_code == 201, r.text
    request = (await http.get(f"/ServiceRequest/{ref['ServiceRequest']}", headers=hotline)).json()
    r = await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json={**request, "status": "completed"},
                       headers=hotline)
    assert r.status_code == 200, r.text
    request = r.json()
    request["performer"].append({"reference": f"Organization/{ids['legal']}"})
    r = await http.put(f"/ServiceRequest/{ref['ServiceRequest']}", json=request, headers=hotline)
    assert r.status_code == 422 and rule_of(r) == "consent-required", r.text
    assert (await http.get(f"/Patient/{ref['Patient']}", headers=as_(ids["legal"]))).status_code == 404


async def test_supporting_consent_must_be_about_the_referrals_patient(http, as_, ids, make_referral):
    first = await make_referral(to_keys=("clinic",), code="clinical-management-of-rape")
    second = await make_referral()
    hotline, shelter = as_(ids["hotline"]), as_(ids["shelter"])
    body = world.service_request(f"Patient/{second['Patient']}", ids["hotline"], [f"Organization/{ids['shelter']}"],
                                 "safety-shelter", "safety-shelter", f"Consent/{second['Consent']}")
    body["supportingInfo"].append({"reference": f"Consent/{first['Consent']}"})
    r = await http.post("/ServiceRequest", json=body, headers=hotline)
    assert r.status_code == 422 and rule_of(r) == "consent-patient", r.text
    assert r.json()["issue"][0]["expression"] == ["ServiceRequest.supportingInfo[1]"]
    request = (await http.get(f"/ServiceRequest/{second['ServiceRequest']}", headers=hotline)).json()
    request["supportingInfo"].append({"reference": f"Consent/{first['Consent']}"})
    r = await http.put(f"/ServiceRequest/{second['ServiceRequest']}", json=request, headers=hotline)
    assert r.status_code == 422 and rule_of(r) == "consent-patient", r.text
    assert (await http.get(f"/ServiceRequest/{second['ServiceRequest']}")).json()["meta"]["versionId"] == "1"
    assert (await http.get(f"/Consent/{first['Consent']}", headers=shelter)).status_code == 404
