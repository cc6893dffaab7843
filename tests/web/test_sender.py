"""The hotline caseworker's referral form: a directory search, then one transaction Bundle that passes the rules."""
from __future__ import annotations

import re

from exchange.referral import codes
from tests.referral import world

FORM = {"service_type": "safety-shelter", "language": "", "eligibility": "", "case_code": "HTL-2026-0777",
        "gender": "female", "birth_year": "1995", "pref_language": "prs", "interpreter": "yes", "priority": "urgent",
        "due_hours": "48", "consent": "yes", "consent_method": "verbal", "share_identity": "yes",
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


async def test_a_hotline_caseworker_finds_a_service_and_sends_a_referral(web_world, browser, client):
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
    assert task["restriction"]["period"]["end"] == "2026-11-27T09:00:30.000Z"  # 48 h after it was sent
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
