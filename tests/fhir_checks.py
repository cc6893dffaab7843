"""Assertions shared by the FHIR tests: what the server returns must be valid R4 (fhir.resources' models, and no
element or resource type that R4 itself lacks)."""
from __future__ import annotations

from fhir.resources.R4B import get_fhir_model_class

from exchange.fhir import r4


def assert_valid(resource: dict) -> dict:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert r4.issues(resource, resource["resourceType"]) == []
    return resource


def assert_bundle(bundle: dict, kind: str) -> dict:
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == kind
    assert_valid(bundle)
    for entry in bundle.get("entry", []):
        if kind == "searchset":
            assert entry["search"]["mode"] in ("match", "include")
        if "resource" in entry:
            assert_valid(entry["resource"])
    return bundle


def assert_outcome(response, status: int, *, expression: str | None = None, text: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert_valid(body)
    issue = body["issue"][0]
    assert issue.get("diagnostics")
    if expression is not None:
        assert any(expression in e for i in body["issue"] for e in i.get("expression", [])), body
    if text is not None:
        assert any(text in i.get("diagnostics", "") for i in body["issue"]), body
    return body


def patient(case_code: str = "HL-2026-0001", **extra) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": "https://hotline.example.org/case", "value": case_code}],
            "gender": "female", **extra}


def organization(name: str, **extra) -> dict:
    return {"resourceType": "Organization", "name": name, "active": True, **extra}


def task(status: str = "requested", **extra) -> dict:
    return {"resourceType": "Task", "status": status, "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            **extra}
