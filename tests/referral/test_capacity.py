"""Capacity (available places, waitlist, closed) replaces the yes/no accepting-referrals: the provider updates it,
nobody else may, bad values are refused naming the element and the rule; intake rules and the new service types."""
from __future__ import annotations

import pytest

from exchange.referral import codes
from exchange.referral.directory import capacity_extension

from . import world
from .conftest import rule_of

CAPACITY = f"HealthcareService.extension('{codes.EXT_CAPACITY}')"
INTAKE = f"HealthcareService.extension('{codes.EXT_INTAKE}')"


async def _service(http, headers: dict, service_id: str) -> dict:  # noqa: ANN001
    r = await http.get(f"/HealthcareService/{service_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _with(body: dict, *extensions: dict) -> dict:
    kept = [e for e in body.get("extension", []) if e["url"] not in {x["url"] for x in extensions}]
    return {**body, "extension": kept + list(extensions)}


async def test_provider_updates_its_capacity_and_partners_find_who_has_room(http, as_, ids, make_referral):
    shelter, hotline = as_(ids["shelter"]), as_(ids["hotline"])
    current = await _service(http, shelter, ids["svc-shelter"])
    waitlist = capacity_extension("waitlist", "2026-11-26T07:30:00+03:00", places=0, waitlist=3)
    r = await http.put(f"/HealthcareService/{ids['svc-shelter']}", json=_with(current, waitlist), headers=shelter)
    assert r.status_code == 200, r.text
    seen = await _service(http, hotline, ids["svc-shelter"])
    assert [e for e in seen["extension"] if e["url"] == codes.EXT_CAPACITY] == [waitlist]
    found = (await http.get("/HealthcareService", params={"capacity": "waitlist"}, headers=hotline)).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [ids["svc-shelter"]]
    assert (await http.get("/HealthcareService", params={"capacity": "available", "service-type": "safety-shelter"},
                           headers=hotline)).json()["total"] == 0
    # a waitlist still takes referrals (onto the list); closed does not
    assert (await make_referral(to_keys=(f"HealthcareService/{ids['svc-shelter']}",)))["Task"]
    closed = capacity_extension("closed", "2026-11-26T09:00:00+03:00")
    current = await _service(http, shelter, ids["svc-shelter"])
    assert (await http.put(f"/HealthcareService/{ids['svc-shelter']}", json=_with(current, closed),
                           headers=shelter)).status_code == 200
    r = await make_referral(to_keys=(f"HealthcareService/{ids['svc-shelter']}",), expect=422)
    assert rule_of(r) == "referral-routing" and "capacity=available,waitlist" in r.text


async def test_only_the_provider_changes_its_capacity(http, as_, ids, make_client):
    hotline, shelter = as_(ids["hotline"]), as_(ids["shelter"])
    current = await _service(http, shelter, ids["svc-shelter"])
    change = _with(current, capacity_extension("closed", "2026-11-26T09:00:00Z"))
    r = await http.put(f"/HealthcareService/{ids['svc-shelter']}", json=change, headers=hotline)
    assert r.status_code == 403 and rule_of(r) == "directory-provider"
    assert r.json()["issue"][0]["expression"] == ["HealthcareService.providedBy"]
    auditor = await make_client(ids["other"], role="auditor", scopes="system/*.rs")
    assert (await auditor.put(f"/HealthcareService/{ids['svc-shelter']}", json=change)).status_code == 403
    # giving the entry away to another organisation is refused too
    moved = {**current, "providedBy": {"reference": f"Organization/{ids['hotline']}"}}
    r = await http.put(f"/HealthcareService/{ids['svc-shelter']}", json=moved, headers=shelter)
    assert r.status_code == 403 and rule_of(r) == "directory-provider"
    assert await _service(http, shelter, ids["svc-shelter"]) == current
    # a directory admin manages every entry
    admin = await make_client(ids["other"], role="admin", scopes="system/*.cruds")
    assert (await admin.put(f"/HealthcareService/{ids['svc-shelter']}", json=change)).status_code == 200


def _capacity(*parts: dict) -> dict:
    return {"url": codes.EXT_CAPACITY, "extension": list(parts)}


UPDATED = {"url": "updated", "valueDateTime": "2026-11-26T09:00:00Z"}
BAD_CAPACITY = [
    (_capacity({"url": "status", "valueCode": "full-up-7731"}, UPDATED), f"{CAPACITY}.extension('status')",
     "status is required"),
    (_capacity(UPDATED), f"{CAPACITY}.extension('status')", "status is required"),
    (_capacity({"url": "status", "valueCode": "closed"}, {"url": "places", "valueUnsignedInt": 4}, UPDATED),
     f"{CAPACITY}.extension('places')", "cannot have available places"),
    (_capacity({"url": "status", "valueCode": "available"}, {"url": "places", "valueUnsignedInt": 0}, UPDATED),
     f"{CAPACITY}.extension('places')", "at least one place"),
    (_capacity({"url": "status", "valueCode": "available"}), f"{CAPACITY}.extension('updated')", "updated is required"),
    (_capacity({"url": "status", "valueCode": "available"}, {"url": "updated", "valueDateTime": "2026-11-26"}),
     f"{CAPACITY}.extension('updated')", "with time and zone"),
    (_capacity({"url": "status", "valueCode": "available"}, {"url": "beds-7731", "valueUnsignedInt": 1}, UPDATED),
     f"{CAPACITY}.extension[1]", "unknown part"),
    ({"url": codes.EXT_ACCEPTING, "valueBoolean": True}, "HealthcareService.extension", "replaced by"),
]


@pytest.mark.parametrize("extension,expression,text", BAD_CAPACITY, ids=[c[2] for c in BAD_CAPACITY])
async def test_bad_capacity_is_refused_naming_the_element_and_rule(http, as_, ids, extension, expression, text):
    shelter = as_(ids["shelter"])
    current = await _service(http, shelter, ids["svc-shelter"])
    body = _with(current, extension) if extension["url"] == codes.EXT_CAPACITY else \
        {**current, "extension": [extension]}
    r = await http.put(f"/HealthcareService/{ids['svc-shelter']}", json=body, headers=shelter)
    assert r.status_code == 422, r.text
    issues = r.json()["issue"]
    hit = next((i for i in issues if i["expression"] == [expression]), None)
    assert hit is not None, issues
    assert hit["diagnostics"].startswith("directory-capacity:") and text in hit["diagnostics"]
    assert "7731" not in r.text  # the value sent is never repeated
    assert await _service(http, shelter, ids["svc-shelter"]) == current


async def test_negative_places_are_not_an_unsigned_int(http, as_, ids):
    shelter = as_(ids["shelter"])
    current = await _service(http, shelter, ids["svc-shelter"])
    bad = _capacity({"url": "status", "valueCode": "available"}, {"url": "places", "valueUnsignedInt": -2}, UPDATED)
    r = await http.put(f"/HealthcareService/{ids['svc-shelter']}", json=_with(current, bad), headers=shelter)
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome" and "valueUnsignedInt" in r.text and "-2" not in r.text
    assert await _service(http, shelter, ids["svc-shelter"]) == current


async def test_intake_rules_are_published_and_checked(http, as_, ids):
    shelter, hotline = as_(ids["shelter"]), as_(ids["hotline"])
    current = await _service(http, shelter, ids["svc-shelter"])
    intake = {"url": codes.EXT_INTAKE, "extension": [
        {"url": "min-age", "valueUnsignedInt": 18}, {"url": "document", "valueString": "None needed for a first night"},
        {"url": "cost", "valueCode": "free"}]}
    r = await http.put(f"/HealthcareService/{ids['svc-shelter']}", json=_with(current, intake), headers=shelter)
    assert r.status_code == 200, r.text
    assert intake in (await _service(http, hotline, ids["svc-shelter"]))["extension"]
    for parts, where, text in (
            ([{"url": "min-age", "valueUnsignedInt": 18}, {"url": "max-age", "valueUnsignedInt": 12}],
             f"{INTAKE}.extension('min-age')", "not be above max-age"),
            ([{"url": "cost", "valueCode": "priceless-7731"}], f"{INTAKE}.extension('cost')", "cost must be one of"),
            ([{"url": "min-age", "valueUnsignedInt": 731}], f"{INTAKE}.extension('min-age')", "from 0 to 130")):
        body = _with(current, {"url": codes.EXT_INTAKE, "extension": parts})
        r = await http.put(f"/HealthcareService/{ids['svc-shelter']}", json=body, headers=shelter)
        assert r.status_code == 422, r.text
        hit = next(i for i in r.json()["issue"] if i["expression"] == [where])
        assert hit["diagnostics"].startswith("directory-intake:") and text in hit["diagnostics"]
        assert "7731" not in r.text


async def test_new_service_types_route_referrals(http, as_, ids, make_referral):
    body = world.service(ids["other"], ["cash-assistance", "transport", "non-food-items", "education",
                                        "child-protection", "safe-accommodation-children"], name="Everything NGO")
    r = await http.post("/HealthcareService", json=body)
    assert r.status_code == 201, r.text
    service = f"HealthcareService/{r.json()['id']}"
    hotline = as_(ids["hotline"])
    for code in ("cash-assistance", "family-tracing", "education"):
        found = (await http.get("/HealthcareService", params={"service-type": code}, headers=hotline)).json()
        assert found["total"] == (0 if code == "family-tracing" else 1), code
    # a child protection service offers family tracing (a descendant); children's shelter is a kind of shelter
    assert (await make_referral(to_keys=(service,), code="family-tracing", category="child-protection",
                                recipients=[f"Organization/{ids['other']}"]))["Task"]
    assert (await make_referral(to_keys=(service,), code="cash-assistance",
                                recipients=[f"Organization/{ids['other']}"]))["Task"]
    assert (await make_referral(to_keys=(service,), code="safe-accommodation-children", category="safety-shelter",
                                recipients=[f"Organization/{ids['other']}"]))["Task"]
