"""The hotline caseworker's referral form: a directory search, then one transaction Bundle that passes the rules."""
from __future__ import annotations

import re

from datetime import datetime, timedelta, timezone

from exchange.referral import codes, consent_rules, deadlines
from exchange.store import clock
from exchange.store.clock import fhir_instant
from tests.referral import world

FORM = {"service_type": "safety-shelter", "language": "", "eligibility": "", "case_code": "HTL-2026-0777",
        "gender": "female", "birth_year": "1995", "pref_language": "prs", "interpreter": "yes", "priority": "urgent",
        "consent": "yes", "consent_method": "verbal-phone", "share_identity": "yes",
        "do_not_contact": "yes", "safe_times": "Weekdays 10:00-12:00", "code_word": world.CODE_WORD,
        "leave_message": "no"}


async def _areas(client, service_id: str) -> tuple[str, str]:  # noqa: ANN001
    """Two Locations of the directory; the service covers the first."""
    north, south = [(await client.post("/Location", json={"resourceType": "Location", "name": n})).json()["id"]
                    for n in ("Irbid", "Aqaba")]
    service = (await client.get(f"/HealthcareService/{service_id}")).json()
    service["coverageArea"] = [{"reference": f"Location/{north}"}]
    assert (await client.put(f"/HealthcareService/{service_id}", json=service)).status_code == 200
    return north, south


STORED = datetime(2026, 11, 25, 9, 0, 30, tzinfo=timezone.utc)  # the store's clock, held in the test below


async def test_a_hotline_caseworker_finds_a_service_and_sends_a_referral(web_world, browser, client, monkeypatch):
    monkeypatch.setattr(clock, "utcnow", lambda: STORED)
    north, south = await _areas(client, web_world.ids["svc-shelter"])
    page = browser()
    await page.sign_in(web_world.people["hotline"])
    form = await page.get("/web/send")
    assert f'<option value="Location/{south}">Aqaba</option>' in form.text
    found = await page.post("/web/send/find", {"service_type": "safety-shelter", "language": "prs",
                                               "area": f"Location/{north}"})
    services = re.findall(r'name="service" value="([^"]+)"', found.text)
    assert services == [web_world.ids["svc-shelter"]]  # the full shelter is not accepting; the others offer none
    elsewhere = await page.post("/web/send/find", {"service_type": "safety-shelter", "area": f"Location/{south}"})
    assert 'id="no-services"' in elsewhere.text
    sent = await page.post("/web/send", {**FORM, "service": services[0], "language": "prs"})
    assert sent.status_code == 303, sent.text[-800:]
    task_id = sent.headers["location"].rsplit("/", 1)[1]
    assert "HTL-" not in sent.headers["location"]
    task = (await client.get(f"/Task/{task_id}")).json()
    assert task["status"] == "requested" and task["owner"] == {"reference": f"Organization/{web_world.ids['shelter']}"}
    assert task["requester"] == {"reference": f"Organization/{web_world.ids['hotline']}"}
    # the exchange's deadlines for an urgent referral, from when it stored it (the form sets none)
    assert deadlines.stored_of(task) == (fhir_instant(STORED + timedelta(hours=24)),
                                         fhir_instant(STORED + timedelta(hours=72)))
    request = (await client.get(f"/{task['focus']['reference']}")).json()
    assert codes.CONTACT_PROHIBITED in codes.codings_in(request["orderDetail"], codes.REFERRAL_CODES)
    contact = {p["url"]: p for p in request["extension"][0]["extension"]}
    assert contact["code-word"]["valueString"] == world.CODE_WORD and contact["method"]["valueCode"] == "via-referrer"
    consent = (await client.get(f"/{request['supportingInfo'][0]['reference']}")).json()
    assert sorted(codes.codings_in([p for p in consent["provision"]["code"]], codes.DATA_CATEGORY)) == [
        "identity", "referral"]
    patient = (await client.get(f"/{request['subject']['reference']}")).json()
    assert patient["communication"][0]["language"]["coding"][0]["code"] == "prs" and patient["birthDate"] == "1995"
    assert consent["provision"]["actor"][0]["reference"] == {"reference": f"Organization/{web_world.ids['shelter']}"}
    followed = await page.get(sent.headers["location"])
    assert 'id="task-status">New<' in followed.text and world.CODE_WORD in followed.text


async def test_the_form_names_the_field_that_is_missing_and_sends_nothing(web_world, browser, client):
    page = browser()
    await page.sign_in(web_world.people["hotline"])
    await page.get("/web/send")
    service = web_world.ids["svc-shelter"]
    for field, expected in (("consent", "Her consent"), ("case_code", "Case code")):
        refused = await page.post("/web/send", {**FORM, "service": service, field: ""})
        assert refused.status_code == 422 and f"<strong>{expected}</strong>" in refused.text
    direct = await page.post("/web/send", {**FORM, "service": service, "contact_method": "phone"})
    assert direct.status_code == 422 and "<strong>How to contact her</strong>" in direct.text  # and do-not-contact
    assert "entry" not in (await client.get("/Task")).json()


async def _sent_consent(client, sent) -> dict:  # noqa: ANN001
    assert sent.status_code == 303, sent.text[-800:]
    task = (await client.get(f"/Task/{sent.headers['location'].rsplit('/', 1)[1]}")).json()
    request = (await client.get(f"/{task['focus']['reference']}")).json()
    return (await client.get(f"/{request['supportingInfo'][0]['reference']}")).json()


def _given(consent: dict) -> dict:
    [given] = [e for e in consent["extension"] if e["url"] == consent_rules.EXT_CONSENT_GIVEN]
    return {p["url"]: p for p in given["extension"]}


async def test_a_verbal_consent_names_the_caseworker_who_attested_it(web_world, browser, client):
    page = browser()
    await page.sign_in(web_world.people["hotline"])
    await page.get("/web/send")
    consent = await _sent_consent(client, await page.post("/web/send", {**FORM, "service": web_world.ids["svc-shelter"]}))
    parts = _given(consent)
    assert codes.codes_in(parts["method"]["valueCodeableConcept"], consent_rules.CONSENT_CODES) == ["verbal-phone"]
    assert codes.codes_in(parts["capacity"]["valueCodeableConcept"], consent_rules.CONSENT_CODES) == ["self"]
    assert parts["obtained-by"]["valueReference"]["type"] == "Practitioner"
    assert parts["obtained-by"]["valueReference"]["identifier"]["system"].endswith(
        f"/sid/staff/{web_world.ids['hotline']}")
    assert parts["attested"]["valueDateTime"].startswith("2026-11-25")
    assert "performer" not in consent and "sourceReference" not in consent


async def test_a_child_is_referred_on_her_caregivers_consent_with_her_assent(web_world, browser, client):
    page = browser()
    await page.sign_in(web_world.people["hotline"])
    await page.get("/web/send")
    child = {**FORM, "service": web_world.ids["svc-shelter"], "birth_year": "2015"}
    for fields, expected in (({}, "Who gave consent"),
                             ({"consent_by": "parent"}, "Her caregiver's relationship to her"),
                             ({"consent_by": "parent", "caregiver_relationship": "MTH"}, "The child's assent"),
                             ({"consent_by": "parent", "caregiver_relationship": "MTH", "assent": "assent-declined"},
                              "The child's assent"),
                             ({"consent_by": "parent", "caregiver_relationship": "boyfriend", "assent": "assent-given"},
                              "Her caregiver's relationship to her")):
        refused = await page.post("/web/send", {**child, **fields})
        assert refused.status_code == 422 and f"<strong>{expected}</strong>" in refused.text, (fields, expected)
    assert "entry" not in (await client.get("/Task")).json()
    consent = await _sent_consent(client, await page.post("/web/send", {
        **child, "consent_by": "parent", "caregiver_relationship": "MTH", "assent": "assent-given"}))
    parts = _given(consent)
    assert codes.codes_in(parts["capacity"]["valueCodeableConcept"], consent_rules.CONSENT_CODES) == ["parent"]
    assert codes.codes_in(parts["assent"]["valueCodeableConcept"], consent_rules.CONSENT_CODES) == ["assent-given"]
    [caregiver] = consent["contained"]
    assert sorted(caregiver) == ["id", "patient", "relationship", "resourceType"]  # her relationship, nothing more
    assert codes.codings_in(caregiver["relationship"], consent_rules.ROLE_CODE_SYSTEM) == ["MTH"]
    assert consent["performer"] == [{"reference": "#caregiver"}]
    # a best-interest determination may refer a child who did not assent
    determined = await page.post("/web/send", {**child, "consent_by": consent_rules.BEST_INTEREST,
                                               "assent": "assent-declined"})
    assert determined.status_code == 303, determined.text[-800:]


async def test_a_written_consent_records_that_the_signed_form_stays_on_paper(web_world, browser, client):
    page = browser()
    await page.sign_in(web_world.people["hotline"])
    await page.get("/web/send")
    consent = await _sent_consent(client, await page.post("/web/send", {
        **FORM, "service": web_world.ids["svc-shelter"], "consent_method": "written"}))
    assert "attested" not in _given(consent)
    form = (await client.get(f"/{consent['sourceReference']['reference']}")).json()
    assert form["resourceType"] == "DocumentReference" and "data" not in form["content"][0]["attachment"]
    unknown = await page.post("/web/send", {**FORM, "service": web_world.ids["svc-shelter"], "consent_method": "verbal"})
    assert unknown.status_code == 422 and "<strong>How she gave consent</strong>" in unknown.text
