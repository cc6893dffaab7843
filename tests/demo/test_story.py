"""The demo story of `make run` passes every rule, is idempotent, and ends where the story says."""
from __future__ import annotations

from exchange.demo.directory import load_demo
from exchange.demo.story import STORY_SID
from exchange.referral import codes
from tests.referral.conftest import http  # noqa: F401  (the referral tests' fixture)


async def test_demo_story(http, exchange, make_client):
    orgs = await load_demo(exchange)
    assert await load_demo(exchange) == orgs  # idempotent
    assert orgs == {key: key for key in orgs} and "shelter-1" in orgs  # stable ids: Organization/shelter-1
    assert (await http.get("/HealthcareService/shelter-1")).json()["providedBy"] == {
        "reference": "Organization/shelter-1"}
    for rtype, total in (("Patient", 1), ("ServiceRequest", 3), ("Task", 3), ("Consent", 3),
                         ("HealthcareService", 6)):
        assert (await http.get(f"/{rtype}")).json()["total"] == total, rtype

    async def task_of(key: str) -> dict:
        found = (await http.get("/Task", params={"identifier": f"{STORY_SID}|{key}"})).json()
        return found["entry"][0]["resource"]

    assert (await task_of("shelter-1"))["status"] == "accepted"
    clinic = await task_of("clinic-1")
    assert clinic["status"] == "completed" and clinic["output"]
    legal = await task_of("legal-1")
    assert legal["status"] == "cancelled"
    assert legal["businessStatus"]["coding"][0]["code"] == codes.CONSENT_WITHDRAWN
    legal_aid = await make_client(orgs["legal-1"])
    assert (await legal_aid.get(f"/Task/{legal['id']}")).status_code == 200
    assert (await legal_aid.get(f"/Patient/{legal['for']['reference'].split('/')[1]}")).status_code == 404
    assert (await legal_aid.get("/ServiceRequest")).json()["total"] == 0
    hotline = await make_client(orgs["hotline-1"])
    seen = (await hotline.get("/Task", params={"status": "completed"})).json()
    assert [e["resource"]["id"] for e in seen["entry"]] == [clinic["id"]]  # the requester sees the outcome
    dari = (await hotline.get("/HealthcareService", params={
        "service-type": f"{codes.SERVICE_TYPE}|safety-shelter", "communication": "urn:ietf:bcp:47|prs",
        "capacity": "available,waitlist"})).json()
    assert [e["resource"]["name"] for e in dari["entry"]] == ["Safe Haven emergency shelter"]


async def test_demo_shelter_is_confidential(http, exchange, make_client):
    orgs = await load_demo(exchange)
    hotline, livelihood = await make_client(orgs["hotline-1"]), await make_client(orgs["livelihood-1"])
    whole = (await hotline.get("/Location/shelter-1")).json()  # the hotline referred her there
    assert whole["address"]["line"] == ["12 Example Street"] and whole["position"]
    seen = (await livelihood.get("/Location/shelter-1")).json()
    assert seen["address"] == {"district": "Marka", "state": "Amman", "country": "JO"} and "position" not in seen
    service = (await livelihood.get("/HealthcareService/shelter-1")).json()
    assert "telecom" not in service and "location" not in service and service["meta"]["security"][0]["code"] == \
        "REDACTED"
    capacity = next(e for e in service["extension"] if e["url"] == codes.EXT_CAPACITY)
    assert {"url": "places", "valueUnsignedInt": 3} in capacity["extension"]
