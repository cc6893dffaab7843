"""Broken object level authorisation, tried on every interaction: a second organisation cannot read, vread,
search (by every search parameter), _include, _revinclude, _history, update or delete the first one's referral.
For it the referral does not exist: 404, or absent from the Bundle. The organisations party to it see it."""
from __future__ import annotations

import uuid

import base64

import pytest

from exchange.fhir.definitions import SEARCH_PARAMS
from tests.fhir_checks import assert_outcome
from tests.referral import world as referral_world

CASE = "https://hotline.example.org/case"
SVC = "https://gbv-exchange.org/fhir/CodeSystem/gbv-service-type"
DATA = "https://gbv-exchange.org/fhir/CodeSystem/gbv-data-category"
REFERRAL_TYPES = ("Patient", "Consent", "DocumentReference", "ServiceRequest", "Task")


def _resources(a: str, c: str) -> dict[str, dict]:
    """The first organisation's referral to the shelter, as a partner posts it (references filled in later)."""
    return {
        "Patient": {"resourceType": "Patient", "identifier": [{"system": CASE, "value": "HL-7"}], "gender": "female",
                    "managingOrganization": {"reference": f"Organization/{a}"}},
        "Consent": {"resourceType": "Consent", "status": "active", "identifier": [{"system": CASE, "value": "C-7"}],
                    "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                          "code": "patient-privacy"}]},
                    "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                    "organization": [{"reference": f"Organization/{a}"}], "dateTime": "2026-11-20T09:00:00Z",
                    "provision": {"actor": [{"role": {"coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                        "reference": {"reference": f"Organization/{c}"}}],
                        "code": [{"coding": [{"system": DATA, "code": code}]} for code in ("referral", "incident")]},
                    "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                               "code": "OPTIN"}]}},
        "DocumentReference": {"resourceType": "DocumentReference", "status": "current",
                              "identifier": [{"system": CASE, "value": "D-7"}],
                              "type": {"coding": [{"system": "http://loinc.org", "code": "57133-1"}]},
                              "category": [{"coding": [{"system": DATA, "code": "incident"}]}],
                              "author": [{"reference": f"Organization/{a}"}],
                              "content": [{"attachment": {"contentType": "text/plain",
                                                          "data": base64.b64encode(b"referral note").decode()}}]},
        "ServiceRequest": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                           "priority": "urgent", "identifier": [{"system": CASE, "value": "SR-7"}],
                           "category": [{"coding": [{"system": SVC, "code": "safety-shelter"}]}],
                           "code": {"coding": [{"system": SVC, "code": "safety-shelter"}]},
                           "requester": {"reference": f"Organization/{a}"},
                           "performer": [{"reference": f"Organization/{c}"}], "authoredOn": "2026-11-20T10:00:00Z"},
        "Task": {"resourceType": "Task", "status": "requested", "intent": "order",
                 "identifier": [{"system": CASE, "value": "T-7"}],
                 "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
                 "businessStatus": referral_world.reason("waitlisted"),
                 "requester": {"reference": f"Organization/{a}"}, "owner": {"reference": f"Organization/{c}"},
                 "authoredOn": "2026-11-20T10:00:00Z", "lastModified": "2026-11-20T10:00:00Z"},
    }


@pytest.fixture
async def world(make_org, make_client, client):
    """Organisation A refers a survivor to shelter C; organisation B is a stranger to the referral."""
    a, b, c = await make_org("Hotline A", "hotline"), await make_org("Clinic B", "clinic"), \
        await make_org("Shelter C", "shelter")
    sender, stranger, receiver = await make_client(a), await make_client(b), await make_client(c)
    r = await client.post("/HealthcareService", json=referral_world.service(c, ["safety-shelter"]))
    assert r.status_code == 201, r.text
    body = _resources(a, c)
    ids: dict[str, str] = {}

    async def post(rtype: str) -> None:
        r = await sender.post(f"/{rtype}", json=body[rtype])
        assert r.status_code == 201, r.text
        ids[rtype] = r.json()["id"]

    await post("Patient")
    patient = {"reference": f"Patient/{ids['Patient']}"}
    body["Consent"]["patient"] = patient
    body["DocumentReference"]["subject"] = patient
    await post("Consent")
    await post("DocumentReference")
    body["ServiceRequest"]["subject"] = patient
    body["ServiceRequest"]["supportingInfo"] = [{"reference": f"Consent/{ids['Consent']}"},
                                                {"reference": f"DocumentReference/{ids['DocumentReference']}"}]
    await post("ServiceRequest")
    body["Task"].update({"for": patient, "focus": {"reference": f"ServiceRequest/{ids['ServiceRequest']}"},
                         "basedOn": [{"reference": f"ServiceRequest/{ids['ServiceRequest']}"}]})
    await post("Task")
    return {"orgs": {"a": a, "b": b, "c": c}, "ids": ids, "sender": sender, "stranger": stranger,
            "receiver": receiver}


async def test_parties_see_the_referral(world):
    for who in ("sender", "receiver"):
        for rtype, rid in world["ids"].items():
            r = await world[who].get(f"/{rtype}/{rid}")
            assert r.status_code == 200, (who, rtype, r.text)


async def test_stranger_cannot_read_vread_or_history(world):
    stranger = world["stranger"]
    for rtype, rid in world["ids"].items():
        for path in (f"/{rtype}/{rid}", f"/{rtype}/{rid}/_history/1", f"/{rtype}/{rid}/_history"):
            assert_outcome(await stranger.get(path), 404)


async def test_stranger_cannot_update_or_delete(world, client):
    stranger = world["stranger"]
    for rtype, rid in world["ids"].items():
        current = (await client.get(f"/{rtype}/{rid}")).json()
        assert_outcome(await stranger.put(f"/{rtype}/{rid}", json=current), 405)  # as for an unknown id
        assert_outcome(await stranger.delete(f"/{rtype}/{rid}"), 404)
        after = await client.get(f"/{rtype}/{rid}")
        assert after.status_code == 200 and after.json()["meta"]["versionId"] == "1"


def _queries(world) -> list[tuple[str, str]]:
    """One query per search parameter of each referral type, each matching the first organisation's resource."""
    ids, orgs = world["ids"], world["orgs"]
    p, sr = f"Patient/{ids['Patient']}", f"ServiceRequest/{ids['ServiceRequest']}"
    values = {
        "Task": {"status": "requested", "owner": f"Organization/{orgs['c']}", "requester": f"Organization/{orgs['a']}",
                 "focus": sr, "patient": p, "subject": p, "code": "fulfill", "business-status": "waitlisted",
                 "authored-on": "2026-11-20", "modified": "ge2026-11-01", "intent": "order",
                 "identifier": f"{CASE}|T-7", "based-on": sr, "owner-organization": f"Organization/{orgs['c']}",
                 # the deadlines the exchange set when the Task was sent (from now on), and not escalated
                 "deadline": "ge2026-01-01", "acknowledgement-due": "ge2026-01-01", "escalated": ":not=true"},
        "ServiceRequest": {"status": "active", "intent": "order", "category": f"{SVC}|safety-shelter",
                           "code": "safety-shelter", "priority": "urgent", "patient": p, "subject": p,
                           "requester": f"Organization/{orgs['a']}", "performer": f"Organization/{orgs['c']}",
                           "identifier": f"{CASE}|SR-7", "authored": "ge2026-11-01"},
        "Patient": {"identifier": f"{CASE}|HL-7", "gender": "female", "organization": f"Organization/{orgs['a']}"},
        "Consent": {"identifier": f"{CASE}|C-7", "patient": p, "status": "active", "category": "59284-0",
                    "organization": f"Organization/{orgs['a']}"},
        "DocumentReference": {"identifier": f"{CASE}|D-7", "patient": p, "subject": p, "status": "current",
                              "type": "57133-1", "author": f"Organization/{orgs['a']}"},
    }
    out = []
    for rtype in REFERRAL_TYPES:
        assert set(values[rtype]) == set(SEARCH_PARAMS[rtype]), f"a search parameter of {rtype} is not tried"
        out += [(rtype, f"{name}{value}" if value.startswith(":") else f"{name}={value}")  # (a modifier first)
                for name, value in values[rtype].items()]
        out += [(rtype, f"_id={ids[rtype]}"), (rtype, "_lastUpdated=ge2000-01-01"), (rtype, "_total=accurate")]
    out += [("Task", f"patient.identifier={CASE}|HL-7"), ("Task", "focus:ServiceRequest.priority=urgent"),
            ("ServiceRequest", f"subject:Patient.identifier={CASE}|HL-7")]  # chains
    return out


async def test_stranger_finds_nothing_by_any_search_parameter(world, client):
    stranger = world["stranger"]
    for rtype, query in _queries(world):
        seen = (await client.get(f"/{rtype}?{query}&_total=accurate")).json()
        assert seen["total"] >= 1, f"{rtype}?{query} does not match the referral: the test proves nothing"
        for r in (await stranger.get(f"/{rtype}?{query}&_total=accurate"),
                  await stranger.post(f"/{rtype}/_search", content=f"{query}&_total=accurate",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})):
            assert r.status_code == 200, r.text
            assert r.json()["total"] == 0 and not r.json().get("entry"), (rtype, query)


async def test_stranger_cannot_reach_the_referral_through_include_or_revinclude(world, client):
    stranger, ids, orgs = world["stranger"], world["ids"], world["orgs"]
    # the stranger's own Task pointing at the first organisation's request and survivor shares nothing
    own_task = {"resourceType": "Task", "status": "requested", "intent": "order",
                "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
                "requester": {"reference": f"Organization/{orgs['b']}"}, "owner": {"reference": f"Organization/{orgs['b']}"},
                "focus": {"reference": f"ServiceRequest/{ids['ServiceRequest']}"},
                "for": {"reference": f"Patient/{ids['Patient']}"}, "authoredOn": "2026-11-20T09:00:00Z"}
    # refused exactly as if the request did not exist: the stranger cannot even point at it (no existence oracle)
    created = await stranger.post("/Task", json=own_task)
    missing = await stranger.post("/Task", json={**own_task, "focus": {"reference": f"ServiceRequest/{uuid.uuid4()}"}})
    assert created.status_code == missing.status_code == 422
    assert created.json() == missing.json() and created.json()["issue"][0]["expression"] == ["Task.focus"]
    for rtype in ("ServiceRequest", "Patient", "Consent", "DocumentReference"):
        assert_outcome(await stranger.get(f"/{rtype}/{ids[rtype]}"), 404)
    # the first organisation's Task pointing at the stranger's own survivor is not revincluded for the stranger
    own_patient = (await stranger.post("/Patient", json={"resourceType": "Patient", "gender": "female",
                                                         "identifier": [{"value": "B-1"}]})).json()
    pointing = _resources(orgs["a"], orgs["c"])["Task"]
    pointing.update({"for": {"reference": f"Patient/{own_patient['id']}"},
                     "focus": {"reference": f"ServiceRequest/{ids['ServiceRequest']}"}})
    other = await world["sender"].post("/Task", json=pointing)
    assert other.status_code == 422, other.text  # the referral rules refuse it outright (Task.for != subject)
    for query in (f"Patient?_id={own_patient['id']}&_revinclude=Task:patient",
                  f"Organization?_id={orgs['a']}&_revinclude=HealthcareService:organization"):
        bundle = (await stranger.get(f"/{query}")).json()
        kinds = {e["resource"]["resourceType"] for e in bundle.get("entry", [])}
        assert "Task" not in kinds, query
    # ... and pointing at it did not make the stranger's survivor visible to the first organisation
    assert_outcome(await world["sender"].get(f"/Patient/{own_patient['id']}"), 404)
    system = (await client.get(f"/Patient?_id={own_patient['id']}&_revinclude=Task:patient")).json()
    assert {e["resource"]["resourceType"] for e in system["entry"]} == {"Patient"}


async def test_stranger_gets_404_inside_a_batch_and_a_transaction(world):
    stranger, ids = world["stranger"], world["ids"]
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Task/{ids['Task']}"}},
        {"request": {"method": "GET", "url": f"Patient?identifier={CASE}|HL-7"}},
        {"request": {"method": "DELETE", "url": f"ServiceRequest/{ids['ServiceRequest']}"}}]}
    r = await stranger.post("", json=batch)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert entries[0]["response"]["status"].startswith("404")
    assert entries[1]["resource"]["total"] == 0 if "total" in entries[1]["resource"] else \
        not entries[1]["resource"].get("entry")
    assert entries[2]["response"]["status"].startswith("404")
    transaction = dict(batch, type="transaction", entry=batch["entry"][:1])
    r = await stranger.post("", json=transaction)
    assert r.status_code == 404, r.text


async def test_stranger_conditional_create_does_not_find_the_referral(world):
    """If-None-Exist searches under the caller's access: the stranger creates its own resource, learns nothing."""
    r = await world["stranger"].post("/Patient", json={"resourceType": "Patient", "gender": "female",
                                                       "identifier": [{"system": CASE, "value": "HL-7"}]},
                                     headers={"If-None-Exist": f"identifier={CASE}|HL-7"})
    assert r.status_code == 201, r.text
    assert r.json()["id"] != world["ids"]["Patient"]
    assert (await world["sender"].get(f"/Patient/{r.json()['id']}")).status_code == 404


async def test_an_open_referral_reaches_the_performers_named_on_its_request(make_org, make_client, client):
    a, c, d, b = (await make_org("Hotline A", "hotline"), await make_org("Shelter C", "shelter"),
                  await make_org("Shelter D", "shelter"), await make_org("Clinic B", "clinic"))
    sender = await make_client(a)
    for org in (c, d):
        assert (await client.post("/HealthcareService", json=referral_world.service(org, ["safety-shelter"]))
                ).status_code == 201
    bundle = referral_world.referral_bundle({"hotline": a}, [f"Organization/{c}", f"Organization/{d}"], owner=None)
    r = await sender.post("", json=bundle)
    assert r.status_code == 200, r.text
    tid = referral_world.created_ids(r.json())["Task"]
    for org in (c, d):
        provider = await make_client(org)
        assert (await provider.get(f"/Task/{tid}")).status_code == 200
        assert (await provider.get("/Task?status=requested")).json()["entry"][0]["resource"]["id"] == tid
    stranger = await make_client(b)
    assert_outcome(await stranger.get(f"/Task/{tid}"), 404)
