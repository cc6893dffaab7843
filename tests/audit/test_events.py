"""One BALP-shaped AuditEvent per interaction, with the right agent, entity and outcome, and no survivor data."""
from __future__ import annotations

import base64
import hashlib

import httpx
from joserfc.jwk import ECKey

from tests.audit.conftest import audit_rows, query_of, references, subtypes, whole_log_text
from tests.conftest import make_assertion
from exchange.context import system_context
from exchange.fhir.interactions import create
from tests.fhir_checks import assert_valid, patient
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


async def _referral_story(app, make_org, make_client) -> dict:
    """A hotline refers a survivor to a shelter; another NGO probes; a token is refused."""
    hotline, shelter, other = (await make_org("Hotline", "hotline"), await make_org("Shelter", "shelter"),
                               await make_org("Other NGO", "ngo"))
    a = await make_client(hotline)
    r = await a.post("/Patient", json=patient(CASE_CODE, name=[{"given": [NAME], "family": FAMILY}],
                                              telecom=[{"system": "phone", "value": PHONE}]))
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


def _find(events: list[dict], subtype: str, reference_prefix: str | None = None, outcome: str = "0") -> dict:
    for event in events:
        if subtypes(event)[0] == subtype and event["outcome"] == outcome and (
                reference_prefix is None or any(r.startswith(reference_prefix) for r in references(event))):
            return event
    raise AssertionError(f"no AuditEvent {subtype} {reference_prefix} {outcome}")


def _agent_org(event: dict) -> str | None:
    return event["agent"][0]["who"].get("reference")


async def test_every_interaction_has_an_audit_event_with_agent_entity_and_outcome(app, make_org, make_client,
                                                                                 exchange):
    ids = await _referral_story(app, make_org, make_client)
    events = await audit_rows(exchange)
    hotline = f"Organization/{ids['hotline']}"
    for event in events:
        assert_valid({k: v for k, v in event.items() if k != "_seq"})
        assert event["type"]["code"] in ("rest", "110114")
        assert event["source"]["site"] == "http://127.0.0.1:8080"

    create = _find(events, "create", f"Patient/{ids['patient']}/_history/1")
    assert create["action"] == "C" and _agent_org(create) == hotline
    assert create["agent"][1]["who"]["identifier"]["value"] == ids["client"]
    assert create["agent"][1]["network"] == {"address": "127.0.0.1", "type": "2"}
    assert create["agent"][0]["policy"][0].startswith("urn:gbv-exchange:token:")
    assert create["entity"][0]["role"]["code"] == "1"  # the Patient role
    read = _find(events, "read", f"ServiceRequest/{ids['sr']}/_history/1")
    assert read["action"] == "R" and _agent_org(read) == hotline
    request_id = read["entity"][-1]["what"]["identifier"]["value"]  # sent as free text: kept only as a hash
    assert request_id == "sha256:" + hashlib.sha256(f"{NAME} {FAMILY}".encode()).hexdigest()
    update = _find(events, "update", f"ServiceRequest/{ids['sr']}/_history/2")
    assert update["action"] == "U"
    vread = _find(events, "vread", f"ServiceRequest/{ids['sr']}/_history/1")
    assert vread["action"] == "R"
    history = _find(events, "history-instance", f"ServiceRequest/{ids['sr']}")
    assert history["action"] == "R"
    delete = _find(events, "delete", f"DocumentReference/{ids['doc']}")
    assert delete["action"] == "D"

    searches = [e for e in events if subtypes(e)[0] == "search-type" and query_of(e).startswith("Patient?")]
    assert len(searches) == 1, "one AuditEvent per search"
    search = searches[0]
    assert search["action"] == "E" and references(search) == [f"Patient/{ids['patient']}/_history/1"]
    # the identifier (case code) is dropped, the id kept; "name" is not searchable here, so ignored and unrecorded
    assert query_of(search) == f"Patient?identifier=&_id={ids['patient']}"

    in_transaction = _find(events, "create", f"Consent/{ids['consent']}")
    assert subtypes(in_transaction) == ["create", "transaction"]

    not_found = _find(events, "read", f"ServiceRequest/{ids['sr']}", outcome="4")
    assert not_found["outcomeDesc"] == "404 NotFound"
    assert _agent_org(not_found) == f"Organization/{ids['other']}"
    denied = [e for e in events if e.get("outcomeDesc") == "403 Forbidden"]
    assert len(denied) == 1 and references(denied[0]) == [f"ServiceRequest/{ids['sr']}"]

    issued = [e for e in events if e["type"]["code"] == "110114" and e["outcome"] == "0"]
    assert len(issued) == 3 and all(subtypes(e) == ["110122"] for e in issued)
    assert _agent_org(issued[0]) == hotline and issued[0]["agent"][1]["who"]["identifier"]["value"] == ids["client"]
    assert issued[0]["agent"][0]["policy"] == create["agent"][0]["policy"]  # the token then used
    refused = [e for e in events if e["type"]["code"] == "110114" and e["outcome"] == "4"]
    assert len(refused) == 1 and refused[0]["outcomeDesc"] == "401 Unauthorized"
    assert refused[0]["agent"][1]["network"]["address"] == "10.9.9.8"
    assert _agent_org(refused[0]) is None


async def test_the_whole_log_holds_no_survivor_data(app, make_org, make_client, exchange):
    await _referral_story(app, make_org, make_client)
    log = await whole_log_text(exchange)
    assert "Patient?" in log  # the decoded queries are part of what is searched
    for secret in (NAME, FAMILY, PHONE, "70 123", "BLUE-HERON", "18:00", CASE_CODE):
        assert secret not in log, secret
        assert base64.b64encode(secret.encode()).decode()[:8] not in log


async def test_a_search_by_identifier_in_a_transaction_is_redacted_too(client, exchange):
    r = await client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": f"Patient?identifier={CASE_CODE}&gender=female"}}]})
    assert r.status_code == 200, r.text
    events = await audit_rows(exchange)
    search = next(e for e in events if subtypes(e)[0] == "search-type")
    assert subtypes(search) == ["search-type", "transaction"]
    assert query_of(search) == "Patient?identifier=&gender="
    assert CASE_CODE not in await whole_log_text(exchange)
