"""Validation walks a body once: R4's element rules (`exchange.fhir.r4`) and validate.py's own are checked in the one
walk, which also finds every reference a transaction rewrites; what it finds is what each check alone finds."""
from __future__ import annotations

import pytest

from exchange.errors import BadRequest
from exchange.fhir import r4
from exchange.fhir.references import all_references
from exchange.fhir.validate import validate_resource
from tests.fhir_checks import assert_outcome, patient

BAD = [
    {"resourceType": "Patient", "fooBar": 1, "name": [{"text": "", "weird key!": 1}],
     "extension": [{"valueString": "x"}], "link": [{"other": {"reference": "HealthcareService/1"}, "type": "x"}]},
    {"resourceType": "Consent", "status": "active", "scope": {}, "category": [],
     "provision": {"actor": [{"role": {"text": "r"}, "reference": {"reference": "HealthcareService/1"}}],
                   "provision": [{"type": "maybe", "valueCodeableReference": {}}]}},
    {"resourceType": "Task", "status": "requested", "intent": "order", "authoredOn": "2024-01-02",
     "lastModified": "2024-01-01",
     "contained": [{"resourceType": "Patient", "id": "bad id", "gender": "", "fooBar": 1},
                   {"resourceType": "SubscriptionStatus", "status": "active"},
                   {"resourceType": "Consent", "contained": [{"resourceType": "Patient", "gender": "x"}]}],
     "for": {"reference": "Organization/bad id!"}, "input": [[{"type": {"text": "x"}}]]},
]


@pytest.mark.parametrize("body", BAD, ids=["patient", "consent", "task-contained"])
def test_the_one_walk_finds_what_r4_alone_finds_first(body):
    expected = [(i.code, i.diagnostics, i.expression) for i in r4.issues(body, body["resourceType"])]
    assert expected
    with pytest.raises(BadRequest) as refused:
        validate_resource(body, body["resourceType"])
    found = [(i.code, i.diagnostics, i.expression) for i in refused.value.issues
             if i.diagnostics.startswith(("r4-element", "r4-reference"))]
    assert found == expected


def test_the_walk_finds_every_reference_with_its_holder():
    body = {"resourceType": "Task", "status": "requested", "intent": "order",
            "for": {"reference": "urn:uuid:p"}, "focus": {"reference": "urn:uuid:s"},
            "owner": {"reference": "Organization/o"},
            "contained": [{"resourceType": "Patient", "id": "c",
                           "generalPractitioner": [{"reference": "urn:uuid:gp"}]}],
            "input": [{"type": {"text": "x"}, "valueReference": {"reference": "urn:uuid:p"}}]}
    references: list[tuple[dict, str]] = []
    validate_resource(body, "Task", references)
    assert {value for _, value in references} == all_references(body)
    assert len(references) == 5 and all(holder["reference"] is value for holder, value in references)


@pytest.mark.parametrize("contained", [123, True], ids=["number", "boolean"])
async def test_contained_that_is_not_an_array_is_refused_not_a_server_error(client, contained):
    assert_outcome(await client.post("/Patient", json=patient(contained=contained)), 400,
                   expression="Patient.contained")


@pytest.mark.parametrize("resource_type", ["#c", "Organization/x"])
async def test_contained_resource_type_that_names_no_type_is_refused_not_a_server_error(client, resource_type):
    body = patient(contained=[{"resourceType": resource_type, "id": "c"}])
    assert_outcome(await client.post("/Patient", json=body), 400, expression="Patient.contained[0].resourceType",
                   text="not a FHIR R4 (4.0.1) resource type")
