"""Refusals and the audit view reveal nothing the caller cannot already see (issue 11, class 3): the hotline refers
her to the shelter; the clinic, which also holds her Patient, forwards her to legal aid. Neither a refusal nor the
exchange log names, to the hotline or the shelter, the organisations of referrals they are not party to."""
from __future__ import annotations

import json

from . import world
from .conftest import rule_of


async def _forwarded(http, as_, ids, make_referral) -> dict[str, str]:  # noqa: ANN001
    """The hotline's referral to the shelter and to the clinic; the clinic's own referral of her to legal aid."""
    ref = await make_referral(to_keys=("shelter",), categories=("referral", "identity"))
    hotline, clinic = as_(ids["hotline"]), as_(ids["clinic"])
    patient = f"Patient/{ref['Patient']}"
    r = await http.post("/Consent", json=world.consent(patient, ids["hotline"], [f"Organization/{ids['clinic']}"],
                                                       ("referral", "identity")), headers=hotline)
    assert r.status_code == 201, r.text
    body = world.service_request(patient, ids["hotline"], [f"Organization/{ids['clinic']}"], "medical-care",
                                 "medical-care", f"Consent/{r.json()['id']}")
    r = await http.post("/ServiceRequest", json=body, headers=hotline)
    assert r.status_code == 201, r.text
    ref["ToClinic"] = r.json()["id"]
    r = await http.post("/Consent", json=world.consent(patient, ids["clinic"], [f"Organization/{ids['legal']}"]),
                        headers=clinic)
    assert r.status_code == 201, r.text
    body = world.service_request(patient, ids["clinic"], [f"Organization/{ids['legal']}"], "legal-aid", "legal-aid",
                                 f"Consent/{r.json()['id']}")
    r = await http.post("/ServiceRequest", json=body, headers=clinic)
    assert r.status_code == 201, r.text
    ref["Forward"] = r.json()["id"]
    assert (await http.get(f"/Patient/{ref['Patient']}", headers=as_(ids["legal"]))).status_code == 200
    return ref


async def test_consent_refusal_on_her_patient_names_no_organisation_the_writer_cannot_see(http, as_, ids,
                                                                                        make_referral):
    ref = await _forwarded(http, as_, ids, make_referral)
    hotline = as_(ids["hotline"])
    patient = (await http.get(f"/Patient/{ref['Patient']}", headers=hotline)).json()
    r = await http.put(f"/Patient/{ref['Patient']}", json={**patient, "name": [{"text": "Real Name"}]},
                       headers=hotline)
    assert r.status_code == 422 and rule_of(r) == "consent-coverage", r.text  # legal aid may not get her name
    assert ids["legal"] not in r.text and ref["Forward"] not in r.text and "Real Name" not in r.text
    assert (await http.get(f"/Patient/{ref['Patient']}")).json()["meta"]["versionId"] == "1"
    # the shelter, a receiver, may not change her Patient at all: the refusal names no one either
    shelter = as_(ids["shelter"])
    r = await http.put(f"/Patient/{ref['Patient']}", json={**patient, "name": [{"text": "Real Name"}]},
                       headers=shelter)
    assert r.status_code == 403 and ids["legal"] not in r.text and ids["clinic"] not in r.text


async def test_partner_audit_view_shows_only_its_referrals_organisations(http, as_, ids, make_referral):
    ref = await _forwarded(http, as_, ids, make_referral)
    legal, shelter, hotline = as_(ids["legal"]), as_(ids["shelter"]), as_(ids["hotline"])
    assert (await http.get(f"/Patient/{ref['Patient']}", headers=legal)).status_code == 200
    legal_events = (await http.get("/AuditEvent", params={"agent": f"Organization/{ids['legal']}",
                                                          "entity": f"Patient/{ref['Patient']}"})).json()
    assert legal_events["total"] >= 1  # the whole log (the exchange's view) has legal aid reading her Patient
    legal_event = legal_events["entry"][0]["resource"]["id"]
    for who, outsiders in ((shelter, ("legal", "clinic")), (hotline, ("legal",))):
        for params in ({"entity": f"Patient/{ref['Patient']}", "_count": "200"}, {"_count": "200"},
                       {"agent": f"Organization/{ids['legal']}"}):
            r = await http.get("/AuditEvent", params=params, headers=who)
            assert r.status_code == 200, r.text
            assert r.json()["total"] == len(r.json().get("entry", []))
            events = json.dumps(r.json().get("entry", []))  # (the self link echoes the caller's own query)
            for key in outsiders:
                assert ids[key] not in events, (key, params)
        assert (await http.get(f"/AuditEvent/{legal_event}", headers=who)).status_code == 404
    # the clinic, party to both referrals it is in, sees legal aid reading her Patient
    r = await http.get("/AuditEvent", params={"agent": f"Organization/{ids['legal']}"}, headers=as_(ids["clinic"]))
    assert legal_event in [e["resource"]["id"] for e in r.json()["entry"]]
    shelter_view = (await http.get("/AuditEvent", params={"entity": f"Patient/{ref['Patient']}", "_count": "200"},
                                   headers=shelter)).json()
    agents = {e["resource"]["agent"][0]["who"].get("reference") for e in shelter_view["entry"]}
    assert f"Organization/{ids['hotline']}" in agents  # its own referral's partner stays visible
