"""The CapabilityStatement states what the server does, and is itself valid R4."""
from exchange.fhir.definitions import RESOURCE_TYPES, SEARCH_PARAMS
from tests.fhir_checks import assert_valid


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
    assert task["versioning"] == "versioned-update"
    names = {p["name"] for p in task["searchParam"]}
    assert set(SEARCH_PARAMS["Task"]) | {"_id", "_lastUpdated"} <= names
    assert "Task:focus" in task["searchInclude"]
    assert "Task:focus" in by_type["ServiceRequest"]["searchRevInclude"]
