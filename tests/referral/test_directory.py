"""The directory: services found by type, language, eligibility, area and availability; referrals routed only to
services that offer the service and accept new referrals."""
from __future__ import annotations

from exchange.referral import codes, directory

from . import world
from .conftest import rule_of

TYPE = codes.SERVICE_TYPE


async def _names(http, **params) -> list[str]:  # noqa: ANN001
    r = await http.get("/HealthcareService", params=params)
    assert r.status_code == 200, r.text
    return sorted(e["resource"]["name"] for e in r.json().get("entry", []))


async def test_search_services_by_type_and_language(http, ids):
    assert await _names(http, **{"service-type": f"{TYPE}|safety-shelter"}) == ["Full shelter", "Shelter"]
    assert await _names(http, **{"service-type": f"{TYPE}|safety-shelter",
                                 "communication": f"{world.BCP47}|prs"}) == ["Full shelter", "Shelter"]
    # a hotline looks for a shelter that has room and speaks Dari
    assert await _names(http, **{"service-type": f"{TYPE}|safety-shelter", "communication": f"{world.BCP47}|prs",
                                 "capacity": "available,waitlist"}) == ["Shelter"]
    assert await _names(http, **{"communication": f"{world.BCP47}|fr"}) == ["Legal aid"]
    assert await _names(http, **{"capacity": "closed"}) == ["Full shelter"]
    assert await _names(http, **{"eligibility": f"{codes.ELIGIBILITY}|women-only",
                                 "service-type": f"{TYPE}|legal-aid"}) == ["Legal aid"]
    assert await _names(http, **{"service-type": f"{TYPE}|psychosocial-support"}) == []


async def test_search_services_by_area(http, ids):
    area = (await http.post("/Location", json={"resourceType": "Location", "name": "Zarqa governorate",
                                               "mode": "kind"})).json()["id"]
    body = world.service(ids["clinic"], ["psychosocial-support"], name="Counselling Zarqa")
    body["coverageArea"] = [{"reference": f"Location/{area}"}]
    assert (await http.post("/HealthcareService", json=body)).status_code == 201
    assert await _names(http, **{"coverage-area": f"Location/{area}"}) == ["Counselling Zarqa"]


async def test_referral_to_a_service_not_accepting_is_refused(http, ids, make_referral):
    r = await make_referral(to_keys=(f"HealthcareService/{ids['svc-full']}",), expect=422)
    assert rule_of(r) == "referral-routing"
    assert "does not accept new referrals" in r.json()["issue"][0]["diagnostics"]
    r = await make_referral(to_keys=("full",), expect=422)
    assert "does not accept new referrals" in r.json()["issue"][0]["diagnostics"]
    r = await make_referral(to_keys=(f"HealthcareService/{ids['svc-shelter']}",))
    assert r["Task"]


async def test_referral_to_a_service_of_another_type_is_refused(http, ids, make_referral):
    r = await make_referral(to_keys=(f"HealthcareService/{ids['svc-legal']}",), expect=422)
    assert rule_of(r) == "referral-routing" and "does not offer safety-shelter" in r.text
    # a medical service offers clinical management of rape (a descendant of medical-care)
    assert (await make_referral(to_keys=("clinic",), code="clinical-management-of-rape"))["Task"]


async def test_service_request_codes_come_from_the_codesystem(http, ids, make_referral):
    r = await make_referral(code="shopping", category="safety-shelter", expect=422)
    assert rule_of(r) == "referral-servicerequest"
    r = await make_referral(to_keys=("clinic",), code="clinical-management-of-rape", category="legal-aid",
                            expect=422)
    assert "descendants" in r.json()["issue"][0]["diagnostics"]


async def test_directory_entry_profile(http, as_, ids):
    shelter = as_(ids["shelter"])
    current = (await http.get(f"/HealthcareService/{ids['svc-shelter']}", headers=shelter)).json()
    body = {k: v for k, v in current.items() if k != "extension"}
    r = await http.put(f"/HealthcareService/{ids['svc-shelter']}", json=body, headers=shelter)
    assert r.status_code == 422 and rule_of(r) == "directory-capacity"
    r = await http.put(f"/HealthcareService/{ids['svc-shelter']}", headers=shelter,
                       json={**current, "type": [world.coding(TYPE, "shopping")]})
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["HealthcareService.type"]
    assert (await http.get(f"/HealthcareService/{ids['svc-shelter']}")).json() == current


async def test_shelter_that_is_full_stops_new_referrals(http, as_, ids, make_referral):
    shelter = as_(ids["shelter"])
    current = (await http.get(f"/HealthcareService/{ids['svc-shelter']}", headers=shelter)).json()
    full = {**current, "extension": [directory.capacity_extension("closed", "2026-11-21T09:00:00Z")]}
    assert (await http.put(f"/HealthcareService/{ids['svc-shelter']}", json=full, headers=shelter)).status_code == 200
    r = await make_referral(to_keys=("shelter",), expect=422)
    assert "does not accept new referrals" in r.text
