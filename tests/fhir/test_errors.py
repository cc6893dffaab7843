"""Every error is an OperationOutcome with the right status, a useful diagnostic and where the fault is."""
from __future__ import annotations

import pytest

from tests.fhir_checks import assert_outcome, patient, task


async def _count(client, resource_type: str) -> int:
    return (await client.get(f"/{resource_type}?_summary=count")).json()["total"]


async def test_malformed_json_is_400_and_stores_nothing(client):
    r = await client.post("/Patient", content=b'{"resourceType": "Patient",')
    assert_outcome(r, 400, text="not valid JSON")
    assert await _count(client, "Patient") == 0


async def test_empty_body_is_400(client):
    assert_outcome(await client.post("/Patient", content=b""), 400)


async def test_wrong_resource_type_for_endpoint_is_400(client):
    assert_outcome(await client.post("/Patient", json=task()), 400, expression="resourceType")


async def test_unknown_element_is_400_with_its_path(client):
    assert_outcome(await client.post("/Patient", json={**patient(), "favouriteColour": "blue"}), 400,
                   expression="Patient.favouriteColour")


async def test_wrong_type_is_400_with_its_path(client):
    assert_outcome(await client.post("/Patient", json={**patient(), "birthDate": 12}), 400,
                   expression="Patient.birthDate")


@pytest.mark.parametrize("element,value,expression", [
    ("status", "approved", "Task.status"),
    ("intent", "wish", "Task.intent"),
    ("priority", "whenever", "Task.priority"),
])
async def test_task_required_bindings_are_enforced(client, element, value, expression):
    assert_outcome(await client.post("/Task", json={**task(), element: value}), 400, expression=expression)
    assert await _count(client, "Task") == 0


@pytest.mark.parametrize("element,value,expression", [
    ("status", "open", "ServiceRequest.status"),
    ("intent", "wish", "ServiceRequest.intent"),
    ("priority", "later", "ServiceRequest.priority"),
])
async def test_service_request_required_bindings_are_enforced(client, element, value, expression):
    body = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/x"}, element: value}
    assert_outcome(await client.post("/ServiceRequest", json=body), 400, expression=expression)


async def test_identifier_use_binding_is_enforced_anywhere(client):
    body = patient()
    body["identifier"][0]["use"] = "forever"
    assert_outcome(await client.post("/Patient", json=body), 400, expression="Patient.identifier[0].use")


async def test_empty_string_is_400(client):
    assert_outcome(await client.post("/Patient", json={**patient(), "gender": ""}), 400, expression="Patient.gender")


async def test_blank_string_is_400(client):
    body = patient()
    body["identifier"][0]["value"] = "   "
    assert_outcome(await client.post("/Patient", json=body), 400, expression="Patient.identifier[0].value")


async def test_extension_without_url_is_400(client):
    body = {**patient(), "extension": [{"valueString": "x"}]}
    assert_outcome(await client.post("/Patient", json=body), 400, expression="Patient.extension[0]")


async def test_id_longer_than_64_is_400_on_update(client):
    created = (await client.post("/Patient", json=patient())).json()
    long_id = "a" * 65
    r = await client.put(f"/Patient/{long_id}", json={**created, "id": long_id})
    assert_outcome(r, 400, expression="Patient.id")


async def test_task_inv_1_last_modified_before_authored_on_is_400(client):
    body = task(authoredOn="2026-11-20T10:00:00Z", lastModified="2026-11-19T10:00:00Z")
    assert_outcome(await client.post("/Task", json=body), 400, expression="Task.lastModified", text="inv-1")


async def test_wrong_content_type_is_415(client):
    r = await client.post("/Patient", content=b"<Patient/>", headers={"Content-Type": "application/xml"})
    assert_outcome(r, 415, expression="Content-Type")


async def test_xml_format_is_406(client):
    assert_outcome(await client.get("/Patient?_format=xml"), 406, expression="_format")


async def test_accept_xml_only_is_406(client):
    assert_outcome(await client.get("/metadata", headers={"Accept": "application/fhir+xml"}), 406)


async def test_format_json_is_honoured(client):
    r = await client.get("/metadata?_format=json")
    assert r.status_code == 200 and r.json()["resourceType"] == "CapabilityStatement"


async def test_body_over_the_limit_is_413(client, exchange):
    exchange.settings.max_body_bytes = 2048
    big = {**patient(), "name": [{"text": "x" * 4096}]}
    assert_outcome(await client.post("/Patient", json=big), 413)
    assert await _count(client, "Patient") == 0


async def test_chunked_body_over_the_limit_is_413(client, exchange):
    exchange.settings.max_body_bytes = 1024

    async def chunks():
        yield b'{"resourceType": "Patient", "name": [{"text": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}]}'

    assert_outcome(await client.post("/Patient", content=chunks()), 413)


async def test_unsupported_method_is_405(client):
    assert_outcome(await client.patch("/Patient/1", json={}), 405)


async def test_unknown_route_is_404_outcome(client):
    r = await client.get("http://127.0.0.1:8080/nothing-here")
    assert_outcome(r, 404)


async def test_internal_error_does_not_leak_a_stack_trace(app, client, monkeypatch):
    from exchange.fhir.interactions import read

    async def explode(*_args, **_kwargs):
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(read, "read_in", explode)
    r = await client.get("/Patient/abc")
    body = assert_outcome(r, 500)
    assert "secret" not in r.text and "Traceback" not in r.text
    assert "incident" in body["issue"][0]["diagnostics"]


async def test_bundle_posted_to_base_must_be_transaction_or_batch(client):
    r = await client.post("", json={"resourceType": "Bundle", "type": "collection"})
    assert_outcome(r, 400, expression="Bundle.type")


async def test_search_errors_do_not_repeat_the_searched_value(client):
    r = await client.get("/Task?authored-on=Fatima-Yusuf-1990")
    assert_outcome(r, 400, expression="authored-on")
    assert "Fatima" not in r.text
