"""The implementation guide's resources: valid FHIR R4, served read-only, and the example referrals pass the
server's own validation and every referral rule when a partner posts them."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from exchange.referral import codes

CONFORMANCE = Path(codes.conformance_dir())
FILES = sorted(CONFORMANCE.glob("*.json")) + sorted((CONFORMANCE / "examples").glob("*.json"))
ORG_SID = "https://gbv-exchange.org/fhir/sid/organization"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_conformance_resource_is_valid_fhir(path):
    body = orjson.loads(path.read_bytes())
    get_fhir_model_class(body["resourceType"]).model_validate(body)


def test_service_types_have_english_and_arabic_names():
    system = codes.load("CodeSystem", "gbv-service-type")
    concepts = list(codes.service_types())
    assert {"safety-shelter", "medical-care", "clinical-management-of-rape", "psychosocial-support", "legal-aid",
            "police-protection", "livelihood", "family-mediation", "child-protection", "case-management",
            "hotline", "cash-assistance", "transport", "non-food-items", "family-tracing", "education",
            "safe-accommodation-children"} <= set(concepts)

    def walk(items):  # noqa: ANN001, ANN202
        for item in items:
            yield item
            yield from walk(item.get("concept", []))
    for concept in walk(system["concept"]):
        languages = {d["language"] for d in concept["designation"]}
        assert {"ar", "fr", "fa", "ur", "tr", "id"} <= languages, concept["code"]
    assert system["count"] == len(concepts)


async def test_conformance_resources_are_served(http, as_, ids):
    hotline = as_(ids["hotline"])
    r = await http.get("/CodeSystem/gbv-service-type", headers=hotline)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    cmr = r.json()["concept"][1]["concept"][0]
    assert cmr["code"] == "clinical-management-of-rape"
    assert {"language": "ar", "value": "التدبير السريري للاغتصاب (خلال 72 ساعة)"} in cmr["designation"]
    found = (await http.get("/CodeSystem", params={"url": codes.SERVICE_TYPE}, headers=hotline)).json()
    assert found["resourceType"] == "Bundle" and found["type"] == "searchset" and found["total"] == 1
    assert found["entry"][0]["resource"]["id"] == "gbv-service-type"
    assert (await http.get("/ValueSet/gbv-service-category", headers=hotline)).json()["compose"]
    profiles = (await http.get("/StructureDefinition", headers=hotline)).json()
    assert {e["resource"]["url"] for e in profiles["entry"]} >= {
        codes.PROFILE_SERVICE_REQUEST, codes.PROFILE_TASK, codes.PROFILE_PATIENT, codes.PROFILE_CONSENT,
        codes.PROFILE_SERVICE, codes.EXT_SAFE_CONTACT, codes.EXT_CAPACITY, codes.EXT_INTAKE,
        codes.EXT_CONFIDENTIAL}
    r = await http.get("/StructureDefinition/nope", headers=hotline)
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    assert (await http.get("/CodeSystem", params={"bogus": "x"}, headers={**hotline, "Prefer": "handling=strict"})
            ).status_code == 400
    assert (await http.get("/CodeSystem/gbv-service-type", headers={"X-Test-System-Context": "0"})).status_code \
        == 401


async def test_capability_statement_names_the_profiles(http):
    statement = (await http.get("/metadata")).json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert resources["Task"]["supportedProfile"] == [codes.PROFILE_TASK]
    assert resources["CodeSystem"]["interaction"] == [{"code": "read"}, {"code": "search-type"}]
    assert "capacity" in {p["name"] for p in resources["HealthcareService"]["searchParam"]}


async def test_example_referrals_pass_validation_and_every_rule(http, make_client):
    directory = orjson.loads((CONFORMANCE / "examples" / "Bundle-example-directory.json").read_bytes())
    r = await http.post("", json=directory)  # the operator loads the directory
    assert r.status_code == 200, r.text

    async def org(key: str) -> str:
        found = (await http.get("/Organization", params={"identifier": f"{ORG_SID}|{key}"})).json()
        return found["entry"][0]["resource"]["id"]

    hotline = await make_client(await org("example-hotline"))
    for name, receiver in (("shelter", "example-shelter"), ("clinic", "example-clinic"),
                           ("child", "example-shelter")):
        example = orjson.loads((CONFORMANCE / "examples" / f"Bundle-example-referral-{name}.json").read_bytes())
        r = await hotline.post("", json=example)
        assert r.status_code == 200, r.text
        statuses = [e["response"]["status"] for e in r.json()["entry"]]
        assert statuses[:3] == ["200 OK"] * 3  # the directory entries already exist: nothing new in the directory
        assert set(statuses[3:]) == {"201 Created"}
        task_id = next(e["response"]["location"].split("/")[1] for e in r.json()["entry"]
                       if e["response"]["location"].startswith("Task/"))
        provider = await make_client(await org(receiver))
        task = await provider.get(f"/Task/{task_id}")
        assert task.status_code == 200 and task.json()["status"] == "requested"
