"""A confidential shelter: its address, position and contacts reach only organisations party to a referral to it
(and its own); everyone else sees the service, its area and the intake contact, in every interaction."""
from __future__ import annotations

import pytest

from exchange.auth.confidential import HIDDEN
from exchange.fhir.definitions import CONFIDENTIAL_EXTENSION

from . import world
from .conftest import rule_of

STREET = "17 Jasmine Lane"  # what must never reach a non-party
CITY = "Zarqa-Hidden-Town"
PHONE = "+962700001111"
INTAKE = {"system": "phone", "value": "+962711112222", "use": "work"}


@pytest.fixture
async def hidden(http, ids):
    """The shelter's service and Location marked confidential (by the exchange, as a directory admin would)."""
    location = {"resourceType": "Location", "name": "Safe Haven house", "mode": "instance",
                "extension": [{"url": CONFIDENTIAL_EXTENSION, "extension": [
                    {"url": "intake-contact", "valueContactPoint": INTAKE}]}],
                "address": {"line": [STREET], "city": CITY, "district": "Zarqa Qasabah", "state": "Zarqa",
                            "country": "JO", "postalCode": "13110"},
                "position": {"latitude": 32.07, "longitude": 36.09}, "telecom": [{"system": "phone", "value": PHONE}],
                "managingOrganization": {"reference": f"Organization/{ids['shelter']}"}}
    r = await http.post("/Location", json=location)
    assert r.status_code == 201, r.text
    location_id = r.json()["id"]
    current = (await http.get(f"/HealthcareService/{ids['svc-shelter']}")).json()
    before = current["meta"]["versionId"]
    # first an address in the clear (a version from before it was marked confidential), then marked
    plain = {**current, "telecom": [{"system": "phone", "value": PHONE}],
             "location": [{"reference": f"Location/{location_id}"}]}
    assert (await http.put(f"/HealthcareService/{ids['svc-shelter']}", json=plain)).status_code == 200
    marked = {**plain, "extension": [*plain["extension"], {"url": CONFIDENTIAL_EXTENSION, "extension": [
        {"url": "intake-contact", "valueContactPoint": INTAKE}]}]}
    marked.pop("meta")
    r = await http.put(f"/HealthcareService/{ids['svc-shelter']}", json=marked)
    assert r.status_code == 200, r.text
    return {"location": location_id, "service": ids["svc-shelter"], "plain_version": str(int(before) + 1)}


def _assert_redacted(body: dict, intake: bool = True) -> None:
    assert body["meta"]["security"][-1]["code"] == "REDACTED"
    for element in HIDDEN[body["resourceType"]]:
        assert element not in body, element
    text = str(body)
    assert STREET not in text and PHONE not in text and CITY not in text and "13110" not in text
    assert (INTAKE["value"] in text) is intake  # the intake contact stays (in the versions that have it)


def _assert_whole(body: dict) -> None:
    assert "security" not in body.get("meta", {})
    assert PHONE in str(body)


async def test_non_parties_see_the_service_its_area_and_intake_contact_only(http, as_, ids, hidden, make_client):
    other = as_(ids["other"])
    service = (await http.get(f"/HealthcareService/{hidden['service']}", headers=other)).json()
    _assert_redacted(service)
    assert service["name"] == "Shelter" and service["type"]  # the service itself is in the directory
    location = (await http.get(f"/Location/{hidden['location']}", headers=other)).json()
    _assert_redacted(location)
    assert location["address"] == {"district": "Zarqa Qasabah", "state": "Zarqa", "country": "JO"}
    auditor = await make_client(ids["other"], role="auditor", scopes="system/*.rs")
    _assert_redacted((await auditor.get(f"/Location/{hidden['location']}")).json())
    # vread and history: also the version written before the entry was marked confidential
    old = (await http.get(f"/HealthcareService/{hidden['service']}/_history/{hidden['plain_version']}",
                          headers=other)).json()
    _assert_redacted(old, intake=False)
    history = (await http.get(f"/HealthcareService/{hidden['service']}/_history", headers=other)).json()
    for entry in history["entry"]:
        if "telecom" in str(entry) or "security" in str(entry):
            _assert_redacted(entry["resource"], intake=INTAKE["value"] in str(entry))
    assert PHONE not in str(history)


async def test_searches_and_includes_never_reveal_a_confidential_entry(http, as_, ids, hidden):
    other, shelter = as_(ids["other"]), as_(ids["shelter"])
    found = (await http.get("/HealthcareService", params={"service-type": "safety-shelter", "_include":
                                                          "HealthcareService:location"}, headers=other)).json()
    resources = {e["resource"]["id"]: e["resource"] for e in found["entry"]}
    _assert_redacted(resources[hidden["service"]])
    assert hidden["location"] not in resources  # the link is hidden, so is what it leads to
    orgs = (await http.get("/Organization", params={"_id": ids["shelter"],
                                                   "_revinclude": "HealthcareService:organization"},
                           headers=other)).json()
    _assert_redacted(next(e["resource"] for e in orgs["entry"] if e["resource"]["id"] == hidden["service"]))
    # a search on a hidden element does not find it (it would tell where the shelter is)
    for rtype, params in (("HealthcareService", {"location": f"Location/{hidden['location']}"}),
                          ("Location", {"address-city": CITY}),
                          ("HealthcareService", {"location.address-city": CITY}),
                          ("HealthcareService", {"location:Location.address-city": CITY})):
        r = await http.get(f"/{rtype}", params=params, headers=other)
        assert r.status_code == 200 and r.json()["total"] == 0, (rtype, params)
        mine = await http.get(f"/{rtype}", params=params, headers=shelter)  # its own organisation finds it
        assert mine.json()["total"] == 1, (rtype, params)
    # area searches still find it, redacted
    area = (await http.get("/Location", params={"address-state": "Zarqa"}, headers=other)).json()
    _assert_redacted(area["entry"][0]["resource"])
    assert (await http.get("/HealthcareService", params={"confidential": "true"}, headers=other)).json()["total"] == 1


async def test_parties_of_a_referral_to_it_see_the_whole_entry(http, as_, ids, hidden, make_referral):
    hotline = as_(ids["hotline"])
    _assert_redacted((await http.get(f"/HealthcareService/{hidden['service']}", headers=hotline)).json())
    ref = await make_referral(to_keys=(f"HealthcareService/{hidden['service']}",))
    _assert_whole((await http.get(f"/HealthcareService/{hidden['service']}", headers=hotline)).json())
    _assert_whole((await http.get(f"/Location/{hidden['location']}", headers=hotline)).json())
    included = (await http.get("/Task", params={"_id": ref["Task"], "_include": "Task:owner"},
                               headers=hotline)).json()
    _assert_whole(next(e["resource"] for e in included["entry"] if e["resource"]["resourceType"] ==
                       "HealthcareService"))
    with_location = (await http.get("/HealthcareService", params={"_id": hidden["service"], "_include":
                                                                  "HealthcareService:location"},
                                    headers=hotline)).json()
    assert {e["resource"]["id"] for e in with_location["entry"]} == {hidden["service"], hidden["location"]}
    # its own organisation sees it whole without any referral; an unrelated one still does not
    _assert_whole((await http.get(f"/Location/{hidden['location']}", headers=as_(ids["shelter"]))).json())
    _assert_redacted((await http.get(f"/Location/{hidden['location']}", headers=as_(ids["other"]))).json())
    # an organisation party to other referrals only does not
    legal = as_(ids["legal"])
    _assert_redacted((await http.get(f"/HealthcareService/{hidden['service']}", headers=legal)).json())


async def test_a_task_include_of_the_owner_is_redacted_for_the_clinic_that_is_not_party(http, as_, ids, hidden,
                                                                                       make_referral):
    await make_referral(to_keys=(f"HealthcareService/{hidden['service']}",))
    clinic = as_(ids["clinic"])
    found = (await http.get("/HealthcareService", params={"_id": hidden["service"]}, headers=clinic)).json()
    _assert_redacted(found["entry"][0]["resource"])
    assert world.SAFE_PHONE  # the referral itself stays out of the clinic's reach
    assert (await http.get("/Task", headers=clinic)).json()["total"] == 0


async def test_a_referral_to_its_organisation_counts_too(http, as_, ids, hidden, make_referral):
    hotline = as_(ids["hotline"])
    _assert_redacted((await http.get(f"/Location/{hidden['location']}", headers=hotline)).json())
    await make_referral(to_keys=("shelter",))  # owner Organization/shelter: she is going to that provider
    _assert_whole((await http.get(f"/Location/{hidden['location']}", headers=hotline)).json())
    _assert_whole((await http.get(f"/HealthcareService/{hidden['service']}", headers=hotline)).json())


async def test_the_shelter_marks_its_own_location_confidential_and_nobody_else_may(http, as_, ids):
    """The organisation that manages a Location keeps it (directory-provider), as a provider keeps its service."""
    shelter, hotline = as_(ids["shelter"]), as_(ids["hotline"])
    location = {"resourceType": "Location", "name": "Second house", "mode": "instance",
                "address": {"line": [STREET], "district": "Zarqa Qasabah", "country": "JO"},
                "telecom": [{"system": "phone", "value": PHONE}],
                "managingOrganization": {"reference": f"Organization/{ids['shelter']}"}}
    r = await http.post("/Location", json=location)
    assert r.status_code == 201, r.text
    current = r.json()
    marked = {**current, "extension": [{"url": CONFIDENTIAL_EXTENSION, "extension": [
        {"url": "intake-contact", "valueContactPoint": INTAKE}]}]}
    r = await http.put(f"/Location/{current['id']}", json=marked, headers=hotline)
    assert r.status_code == 403 and rule_of(r) == "directory-provider"
    assert STREET in str((await http.get(f"/Location/{current['id']}", headers=hotline)).json())
    given_away = {**current, "managingOrganization": {"reference": f"Organization/{ids['hotline']}"}}
    r = await http.put(f"/Location/{current['id']}", json=given_away, headers=shelter)
    assert r.status_code == 403 and rule_of(r) == "directory-provider"
    r = await http.put(f"/Location/{current['id']}", json=marked, headers=shelter)
    assert r.status_code == 200, r.text
    _assert_redacted((await http.get(f"/Location/{current['id']}", headers=hotline)).json())
    _assert_whole((await http.get(f"/Location/{current['id']}", headers=shelter)).json())
    assert (await http.delete(f"/Location/{current['id']}", headers=shelter)).status_code == 403


async def test_a_conditional_create_that_matches_a_confidential_entry_returns_it_redacted(http, as_, ids, hidden):
    """The matched resource is a disclosure like a read: a non-party is shown it redacted, on the route and in a
    Bundle, with Prefer: return=representation."""
    other = {**as_(ids["other"]), "Prefer": "return=representation"}
    mine = {"resourceType": "Location", "name": "Other house", "mode": "instance",
            "managingOrganization": {"reference": f"Organization/{ids['other']}"}}
    r = await http.post("/Location", json=mine, headers={**other, "If-None-Exist": f"_id={hidden['location']}"})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == hidden["location"]
    _assert_redacted(r.json())
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": mine, "request": {"method": "POST", "url": "Location", "ifNoneExist": f"_id={hidden['location']}"}}]}
    r = await http.post("/", json=bundle, headers=other)
    assert r.status_code == 200, r.text
    [entry] = r.json()["entry"]
    assert entry["response"]["status"].startswith("200")
    _assert_redacted(entry["resource"])
