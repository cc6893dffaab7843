"""R4, not R4B: what R4 (4.0.1) does not define is refused, though fhir.resources' R4B models accept it."""
from __future__ import annotations

from pathlib import Path

import pytest

from exchange.fhir import r4
from tests.fhir_checks import assert_outcome, patient

ROOT = Path(__file__).resolve().parents[2]
R4B_ONLY_EXTENSION_VALUES = {
    "valueCodeableReference": {"concept": {"text": "x"}},
    "valueRatioRange": {"lowNumerator": {"value": 1}},
}


@pytest.mark.parametrize("element", sorted(R4B_ONLY_EXTENSION_VALUES))
async def test_r4b_only_extension_value_is_refused(client, element):
    body = patient(extension=[{"url": "https://example.org/x", element: R4B_ONLY_EXTENSION_VALUES[element]}])
    r = await client.post("/Patient", json=body)
    outcome = assert_outcome(r, 400, expression=f"Patient.extension[0].{element}", text="r4-element")
    assert "FHIR R4 (4.0.1)" in outcome["issue"][0]["diagnostics"]
    assert (await client.get("/Patient")).json().get("total", 0) == 0


async def test_r4b_only_element_in_an_update_is_refused(client):
    created = (await client.post("/Patient", json=patient())).json()
    changed = {**created, "name": [{"text": "x", "extension": [
        {"url": "https://example.org/x", "valueCodeableReference": {"concept": {"text": "y"}}}]}]}
    assert_outcome(await client.put(f"/Patient/{created['id']}", json=changed), 400,
                   expression="Patient.name[0].extension[0].valueCodeableReference")


async def test_r4b_only_contained_resource_is_refused(client):
    body = patient(contained=[{"resourceType": "SubscriptionStatus", "id": "s", "status": "active",
                               "type": "heartbeat", "subscription": {"reference": "Subscription/1"}}])
    assert_outcome(await client.post("/Patient", json=body), 400, expression="Patient.contained[0].resourceType",
                   text="not a FHIR R4 (4.0.1) resource type")


async def test_r4b_only_element_in_a_transaction_entry_refuses_the_bundle(client):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:2b1c1f2e-7a57-4d58-9d4a-2f1f0c7b0a11", "resource": patient(),
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": patient("HL-2", extension=[{"url": "https://example.org/x",
                                                 "valueRatioRange": {"lowNumerator": {"value": 1}}}]),
         "request": {"method": "POST", "url": "Patient"}}]}
    r = await client.post("", json=bundle)
    assert r.status_code == 400, r.text
    assert "r4-element" in r.text and "valueRatioRange" in r.text
    assert (await client.get("/Patient")).json().get("total", 0) == 0


def test_unknown_element_names_the_r4_type_of_a_backbone_element():
    consent = {"resourceType": "Consent", "provision": {"actor": [{"reference": {"reference": "Organization/1"},
                                                                  "role": {"text": "x"}, "bogusElement": True}]}}
    [issue] = r4.issues(consent, "Consent")
    assert issue.expression == ["Consent.provision.actor[0].bogusElement"]
    assert "Consent.provision.actor" in issue.diagnostics


def test_an_unknown_key_that_is_not_element_like_is_not_repeated():
    consent = {"resourceType": "Consent", "provision": {"actor": [{"role": {"text": "x"}, "Amina Yusuf": True}]}}
    [issue] = r4.issues(consent, "Consent")
    assert issue.expression == ["Consent.provision.actor[0]"]
    assert "Amina" not in issue.diagnostics and "Consent.provision.actor" in issue.diagnostics


def test_r4_elements_accept_r4_choice_types_and_primitive_extensions():
    body = patient(birthDate="1990", _birthDate={"extension": [{"url": "https://example.org/x", "valueString": "y"}]},
                   deceasedBoolean=False, contained=[{"resourceType": "Organization", "id": "o", "name": "n"}])
    assert r4.issues(body, "Patient") == []


def test_the_capability_statement_lists_only_r4_resource_types():
    from exchange.fhir.capability import capability_statement
    from exchange.settings import Settings

    statement = capability_statement(Settings())
    assert all(r4.is_resource_type(r["type"]) for r in statement["rest"][0]["resource"])
    assert not r4.is_resource_type("SubscriptionStatus") and not r4.is_resource_type("SubscriptionTopic")


def test_shipped_r4_table_is_what_the_script_makes_from_r4_definitions():
    import importlib.util

    spec = importlib.util.spec_from_file_location("r4_elements", ROOT / "scripts" / "r4_elements.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (ROOT / "exchange" / "fhir" / "r4_elements.json").read_text() == script.render()


async def test_reference_to_a_type_r4_does_not_allow_there_is_refused(client):
    consent = {"resourceType": "Consent", "status": "active", "scope": {"text": "x"}, "category": [{"text": "x"}],
               "policyRule": {"text": "opt-in"},
               "provision": {"actor": [{"role": {"text": "x"}, "reference": {"reference": "HealthcareService/1"}}]}}
    outcome = assert_outcome(await client.post("/Consent", json=consent), 400,
                             expression="Consent.provision.actor[0].reference.reference", text="r4-reference")
    assert "HealthcareService/1" not in str(outcome)  # names the element and the rule, not the value
    consent["provision"]["actor"][0]["reference"] = {"reference": "Organization/1"}
    assert (await client.post("/Consent", json=consent)).status_code == 201
