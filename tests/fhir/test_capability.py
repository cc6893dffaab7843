"""The CapabilityStatement states what the server does, and is itself valid R4."""
import json
from pathlib import Path

from exchange.fhir.definitions import RESOURCE_TYPES, SEARCH_PARAMS
from tests.fhir_checks import assert_outcome, assert_valid, organization, task

R4_DEFINITIONS = Path(__file__).resolve().parents[1] / "r4_validator" / "node_modules" / "@medplum" / \
    "definitions" / "dist" / "fhir" / "r4"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"


async def test_metadata_is_a_valid_capability_statement_for_fhir_4_0_1(client):
    r = await client.get("/metadata")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/fhir+json; charset=utf-8"
    statement = assert_valid(r.json())
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    rest = statement["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch"}
    by_type = {r["type"]: r for r in rest["resource"]}
    assert set(RESOURCE_TYPES) <= set(by_type)
    task = by_type["Task"]
    assert {"read", "vread", "update", "history-instance", "create", "search-type"} <= {
        i["code"] for i in task["interaction"]}
    assert task["conditionalCreate"] is True
    assert task["versioning"] == "versioned"  # not versioned-update: a stale meta.versionId is not refused
    names = {p["name"] for p in task["searchParam"]}
    assert set(SEARCH_PARAMS["Task"]) | {"_id", "_lastUpdated"} <= names
    assert "Task:focus" in task["searchInclude"]
    assert "Task:focus" in by_type["ServiceRequest"]["searchRevInclude"]


def _r4(name: str) -> list[dict]:
    return [e["resource"] for e in json.loads((R4_DEFINITIONS / name).read_text())["entry"]]


async def test_declared_search_parameter_types_match_the_r4_registry(client):
    registry = {(base, sp["code"]): sp["type"] for sp in _r4("search-parameters.json")
                if sp.get("resourceType") == "SearchParameter" for base in sp.get("base", [])}
    statement = (await client.get("/metadata")).json()
    checked = 0
    for entry in statement["rest"][0]["resource"]:
        for param in entry.get("searchParam", []):
            r4_type = registry.get((entry["type"], param["name"])) or registry.get(("Resource", param["name"]))
            if r4_type is not None:
                checked += 1
                assert param["type"] == r4_type, (entry["type"], param["name"])
    assert checked > 80


async def test_operations_resolve_to_operation_definitions(client):
    statement = (await client.get("/metadata")).json()
    core = {od["url"] for od in _r4("profiles-resources.json") if od["resourceType"] == "OperationDefinition"}
    backport = {f"{BACKPORT}/OperationDefinition/backport-subscription-status",
                f"{BACKPORT}/OperationDefinition/backport-subscription-events"}  # the backport IG 1.1 defines both
    definitions = {op["definition"] for entry in statement["rest"][0]["resource"] for op in entry.get("operation", [])}
    assert "http://hl7.org/fhir/OperationDefinition/Resource-validate" in definitions
    for url in definitions - core - backport:
        assert url.startswith("https://gbv-exchange.org/fhir/OperationDefinition/"), url
        found = await client.get(f"/OperationDefinition/{url.rsplit('/', 1)[1]}")
        assert found.status_code == 200 and found.json()["url"] == url
    assert f"{BACKPORT}/CapabilityStatement/backport-subscription-server-r4" in statement["instantiates"]


async def test_every_declared_interaction_of_a_type_works(client):
    statement = (await client.get("/metadata")).json()
    organization_entry = next(e for e in statement["rest"][0]["resource"] if e["type"] == "Organization")
    declared = {i["code"] for i in organization_entry["interaction"]}
    assert declared == {"read", "vread", "update", "delete", "history-instance", "create", "search-type"}
    created = await client.post("/Organization", json=organization("A"))
    oid = created.json()["id"]
    statuses = {
        "create": created.status_code,
        "read": (await client.get(f"/Organization/{oid}")).status_code,
        "vread": (await client.get(f"/Organization/{oid}/_history/1")).status_code,
        "update": (await client.put(f"/Organization/{oid}", json={**created.json(), "name": "B"})).status_code,
        "history-instance": (await client.get(f"/Organization/{oid}/_history")).status_code,
        "search-type": (await client.get("/Organization", params={"name": "B"})).status_code,
        "delete": (await client.delete(f"/Organization/{oid}")).status_code,
    }
    assert statuses == {"create": 201, "read": 200, "vread": 200, "update": 200, "history-instance": 200,
                        "search-type": 200, "delete": 204}
    assert (await client.get("/Organization/_history")).status_code == 405  # history-type: not declared


async def test_a_stale_meta_version_in_the_body_is_not_refused_so_versioning_is_versioned(client):
    created = (await client.post("/Organization", json=organization("A"))).json()
    await client.put(f"/Organization/{created['id']}", json={**created, "name": "B"})
    stale = {**created, "name": "C", "meta": {"versionId": "1"}}
    assert (await client.put(f"/Organization/{created['id']}", json=stale)).status_code == 200


async def test_validate_operation_checks_r4_and_the_profile_without_storing(client):
    ok = await client.post("/Organization/$validate", json=organization("A"))
    assert ok.status_code == 200 and ok.json()["issue"][0]["severity"] == "information"
    bad = await client.post("/Task/$validate", json={"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": {**task(), "status": "approved"}}]})
    assert bad.status_code == 200
    assert any(i["severity"] == "error" and i["expression"] == ["Task.status"] for i in bad.json()["issue"])
    consent = {"resourceType": "Consent", "status": "active", "scope": {"text": "x"}, "category": [{"text": "x"}],
               "policyRule": {"text": "opt-in"}}
    profile = (await client.post("/Consent/$validate", json=consent)).json()
    assert {i["diagnostics"].split(":")[0] for i in profile["issue"]} == {"referral-consent"}
    assert (await client.get("/Organization")).json()["total"] == 0
    assert (await client.get("/Task")).json()["total"] == 0
    assert_outcome(await client.post("/Organization/$validate", json={"resourceType": "Parameters"}), 400,
                   expression="Parameters.parameter")
