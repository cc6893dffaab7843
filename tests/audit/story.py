"""The audit tests' referral story: a hotline refers a survivor to a shelter through every kind of interaction,
another NGO probes, a token is refused (the survivor's words that must reach no log are named here)."""
from __future__ import annotations

import httpx
from joserfc.jwk import ECKey

from exchange.context import system_context
from exchange.fhir.interactions import create
from tests.conftest import make_assertion
from tests.referral import world as referral_world

NAME, FAMILY = "Amira", "Haddad"
PHONE = "+961 70 123 456"
SAFE_CONTACT = "Call only after 18:00; code word BLUE-HERON"
CASE_CODE = "HL-2026-0042"


def _service_request(patient_id: str, requester: str, performer: str, consent_id: str) -> dict:
    return referral_world.service_request(f"Patient/{patient_id}", requester, [f"Organization/{performer}"],
                                          "safety-shelter", "safety-shelter", f"Consent/{consent_id}",
                                          safe_contact=False, note=[{"text": SAFE_CONTACT}])


async def refuse_a_token(app) -> None:
    """A token request with an assertion from a client nobody registered: 401 at the token endpoint."""
    key = ECKey.generate_key("P-384", parameters={"kid": "k1"}, private=True)
    transport = httpx.ASGITransport(app=app, client=("10.9.9.8", 40000), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as raw:
        r = await raw.post("/auth/token", data={
            "grant_type": "client_credentials", "scope": "system/*.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": make_assertion("unknown-app", key, "http://127.0.0.1:8080/auth/token")})
    assert r.status_code == 401, r.text


async def referral_story(app, make_org, make_client) -> dict:
    """A hotline refers a survivor to a shelter; another NGO probes; a token is refused."""
    hotline, shelter, other = (await make_org("Hotline", "hotline"), await make_org("Shelter", "shelter"),
                               await make_org("Other NGO", "ngo"))
    a = await make_client(hotline)
    r = await a.post("/Patient", json=referral_world.patient(
        identifier=[{"system": "https://hotline.example.org/case", "value": CASE_CODE}],
        name=[{"given": [NAME], "family": FAMILY}], telecom=[{"system": "phone", "value": PHONE}]))
    assert r.status_code == 201, r.text
    patient_id = r.json()["id"]
    # the shelter's directory entry (the exchange's own write) and the survivor's consent come first
    await create.create(app.state.exchange, system_context(), "HealthcareService",
                        referral_world.service(shelter, ["safety-shelter"]))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5b1f0ad2-0c5e-4a4e-9d1e-1f9f6f0a0001",
         "resource": referral_world.consent(f"Patient/{patient_id}", hotline, [f"Organization/{shelter}"],
                                            ("referral", "identity", "contact")),
         "request": {"method": "POST", "url": "Consent"}}]}
    r = await a.post("", json=bundle)
    assert r.status_code == 200, r.text
    consent_id = r.json()["entry"][0]["response"]["location"].split("/")[1]
    r = await a.post("/ServiceRequest", json=_service_request(patient_id, hotline, shelter, consent_id))
    assert r.status_code == 201, r.text
    sr_id = r.json()["id"]
    assert (await a.get(f"/ServiceRequest/{sr_id}", headers={"X-Request-ID": f"{NAME} {FAMILY}"})).status_code == 200
    updated = _service_request(patient_id, hotline, shelter, consent_id) | {"id": sr_id, "priority": "stat"}
    assert (await a.put(f"/ServiceRequest/{sr_id}", json=updated)).status_code == 200
    assert (await a.get(f"/ServiceRequest/{sr_id}/_history/1")).status_code == 200
    assert (await a.get(f"/ServiceRequest/{sr_id}/_history")).status_code == 200
    r = await a.get("/Patient", params={"name": NAME, "identifier": CASE_CODE, "_id": patient_id})
    assert r.status_code == 200 and r.json()["total"] == 1, r.text
    r = await a.post("/DocumentReference", json={"resourceType": "DocumentReference", "status": "current",
                                                 "content": [{"attachment": {"contentType": "text/plain"}}]})
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    assert (await a.delete(f"/DocumentReference/{doc_id}")).status_code == 204
    prober = await make_client(other)
    assert (await prober.get(f"/ServiceRequest/{sr_id}")).status_code == 404
    narrow = await make_client(other, scopes="system/Organization.rs")
    assert (await narrow.get(f"/ServiceRequest/{sr_id}")).status_code == 403
    await refuse_a_token(app)
    return {"hotline": hotline, "shelter": shelter, "other": other, "patient": patient_id, "sr": sr_id,
            "consent": consent_id, "doc": doc_id, "client": a.client_id, "prober": prober.client_id}
