"""The caseworker's inbox and referral page: what she chose comes first, only what her consent allows, only the
actions the Task state table allows, and all of it through the interactions (audited as the person)."""
from __future__ import annotations

import logging
import re

from exchange.referral import codes
from tests.referral import world
from tests.web.conftest import send_referral

_TASK_LINK = re.compile(r'href="/web/referral/([0-9a-f-]{36})"')


def _action_ids(html: str) -> list[str]:
    return re.findall(r'id="action-([a-z]+)"', html)


async def test_the_inbox_lists_overdue_and_urgent_referrals_first(web_world, browser, make_client, clock,
                                                                  monkeypatch):
    from datetime import timedelta

    from exchange.store import clock as store_clock

    ids = web_world.ids
    partner = await make_client(ids["hotline"])
    monkeypatch.setattr(store_clock, "utcnow", lambda: clock.now)  # sent now: their deadlines are ahead
    routine = await send_referral(partner, ids, request_extra={"priority": "routine"})
    urgent = await send_referral(partner, ids, request_extra={"priority": "urgent"})
    for created in (routine, urgent):
        task = (await partner.get(f"/Task/{created['Task']}")).json()
        task["priority"] = "routine" if created is routine else "urgent"
        assert (await partner.put(f"/Task/{task['id']}", json=task)).status_code == 200
    monkeypatch.setattr(store_clock, "utcnow", lambda: clock.now - timedelta(days=20))
    overdue = await send_referral(partner, ids, request_extra={"priority": "routine"})  # sent 20 days ago
    page = browser()
    await page.sign_in(web_world.people["shelter"])
    html = (await page.get("/web/inbox")).text
    assert _TASK_LINK.findall(html) == [overdue["Task"], urgent["Task"], routine["Task"]]
    assert html.count('class="badge late"') == 1 and "Amal Hotline" in html and "Safety and shelter" in html
    sent = browser()
    await sent.sign_in(web_world.people["hotline"])
    assert 'id="sent"' in (hotline := (await sent.get("/web/inbox")).text) and "Safe Haven Shelter" in hotline


async def test_the_referral_page_puts_her_contact_choices_first_and_shows_only_consented_data(
        web_world, browser, make_client):
    ids = web_world.ids
    partner = await make_client(ids["hotline"])
    created = await send_referral(partner, ids, patient_extra={"name": [{"text": "Nadia K."}],
                                                               "birthDate": "1994-03-02"},
                                  categories=("referral", "identity"))
    page = browser()
    await page.sign_in(web_world.people["shelter"])
    html = (await page.get(f"/web/referral/{created['Task']}")).text
    main = html[html.index("<main>"):]
    assert main.index('id="contact"') < main.index('id="status"') < main.index('id="survivor"')
    assert 'id="do-not-contact"' in main and world.CODE_WORD in main and world.SAFE_PHONE in main
    assert "Nadia K." in main and "1994-03-02" in main  # identity: consented
    narrow = await send_referral(partner, ids)  # consent to the core referral only
    main = (await page.get(f"/web/referral/{narrow['Task']}")).text
    assert "HTL-" in main and "Nadia" not in main
    assert "<title>Referral</title>" in html and world.CODE_WORD not in html[:html.index("<main>")]


async def test_a_hidden_referral_and_a_missing_one_give_the_same_page(web_world, browser, send_referral_ids):
    page = browser()
    await page.sign_in(web_world.people["other"])
    hidden = await page.get(f"/web/referral/{send_referral_ids['Task']}")
    missing = await page.get("/web/referral/00000000-0000-4000-8000-000000000000")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text == missing.text and 'id="not-found"' in hidden.text
    refused = await page.post(f"/web/referral/{send_referral_ids['Task']}", {"action": "accept", "version": "1"})
    assert refused.status_code == 404 and refused.text == missing.text
    assert 'id="inbox-empty"' in (await page.get("/web/inbox")).text


async def test_only_the_state_tables_actions_are_offered_and_each_goes_through_the_rules(
        web_world, browser, send_referral_ids, client):
    task_id = send_referral_ids["Task"]
    path = f"/web/referral/{task_id}"
    shelter = browser()
    await shelter.sign_in(web_world.people["shelter"])
    assert _action_ids((await shelter.get(path)).text) == ["accept", "decline", "cancel", "progress", "note"]
    stale_form = shelter.csrf
    assert (await shelter.post(path, {"action": "decline", "version": "1"})).status_code == 422  # needs a reason
    assert (await shelter.post(path, {"action": "complete", "version": "1", "text": "x"})).status_code == 409
    for action, text, status in (("accept", "", "Accepted"), ("start", "", "In progress"), ("hold", "", "On hold"),
                                 ("note", "Waiting for a bed", "On hold"), ("start", "", "In progress"),
                                 ("complete", "Given a room; counselling booked", "Completed")):
        version = re.search(r'name="version" value="(\d+)"', (await shelter.get(path)).text).group(1)
        done = await shelter.post(path, {"action": action, "version": version, "text": text})
        assert done.status_code == 303, (action, done.text[-600:])
        assert f'id="task-status">{status}<' in (await shelter.get(path)).text
    final = (await shelter.get(path)).text
    assert _action_ids(final) == [] and "Given a room; counselling booked" in final and "Waiting for a bed" in final
    stale = await shelter.post(path, {"action": "note", "version": "1", "text": "late", "csrf": stale_form})
    assert stale.status_code == 412 and 'id="message"' in stale.text
    hotline = browser()
    await hotline.sign_in(web_world.people["hotline"])
    assert _action_ids((await hotline.get(path)).text) == []  # the requester cannot complete, and it is final
    events = (await client.get("/AuditEvent", params={"entity": f"Task/{task_id}", "action": "U",
                                                      "_sort": "date"})).json()["entry"]
    agents = {(e["resource"]["agent"][0]["who"]["reference"], e["resource"]["agent"][0]["altId"]) for e in events}
    assert agents == {(f"Organization/{web_world.ids['shelter']}", f"staff/{web_world.people['shelter'].id}")}
    assert len(events) == 6


async def test_a_stale_page_is_refused_and_shows_the_referral_as_it_is_now(web_world, browser, send_referral_ids):
    path = f"/web/referral/{send_referral_ids['Task']}"
    one, two = browser(), browser()
    await one.sign_in(web_world.people["shelter"])
    await two.sign_in(web_world.people["shelter"])
    await one.get(path)
    await two.get(path)
    assert (await one.post(path, {"action": "accept", "version": "1"})).status_code == 303
    late = await two.post(path, {"action": "decline", "version": "1", "code": "no-capacity", "text": "no beds"})
    assert late.status_code == 412 and 'id="message"' in late.text and 'id="task-status">Accepted<' in late.text


async def test_a_listed_provider_claims_an_open_referral(web_world, browser, make_client, client):
    ids = web_world.ids
    second = (await client.post("/Organization", json={"resourceType": "Organization", "name": "Second"})).json()
    assert (await client.post("/HealthcareService", json=world.service(second["id"], ["safety-shelter"]))
            ).status_code == 201
    partner = await make_client(ids["hotline"])
    r = await partner.post("", json=world.referral_bundle(
        ids, [f"Organization/{ids['shelter']}", f"Organization/{second['id']}"], owner=None))
    assert r.status_code == 200, r.text
    task_id = world.created_ids(r.json())["Task"]
    page = browser()
    await page.sign_in(web_world.people["shelter"])
    inbox = (await page.get("/web/inbox")).text
    assert 'id="open"' in inbox and task_id in inbox
    path = f"/web/referral/{task_id}"
    assert _action_ids((await page.get(path)).text) == ["accept"]
    assert (await page.post(path, {"action": "accept", "version": "1"})).status_code == 303
    task = (await partner.get(f"/Task/{task_id}")).json()
    assert task["owner"] == {"reference": f"Organization/{ids['shelter']}"} and task["status"] == "accepted"


async def test_nothing_about_her_reaches_a_url_a_title_or_a_log(web_world, browser, send_referral_ids, caplog):
    caplog.set_level(logging.INFO)  # the level `exchange serve` logs at
    page = browser()
    await page.sign_in(web_world.people["shelter"])
    path = f"/web/referral/{send_referral_ids['Task']}"
    html = (await page.get(path)).text
    case_code = re.search(r"HTL-[0-9a-f]{6}", html).group(0)
    done = await page.post(path, {"action": "decline", "version": "1", "code": "outside-coverage-area",
                                  "text": f"{world.CODE_WORD} moved away"})
    assert done.status_code == 303, done.text[-600:]
    secrets_ = (case_code, world.CODE_WORD, world.SAFE_PHONE)
    for text in [f"{r.name} {r.getMessage()}" for r in caplog.records] + [done.headers.get("location", "")]:
        assert not any(s in text for s in secrets_), text
    assert all(s not in re.search(r"<title>(.*?)</title>", html).group(1) for s in secrets_)
    assert codes.EXT_SAFE_CONTACT not in path


def _options(html: str, action: str) -> list[tuple[str, str]]:
    form = re.search(rf'id="action-{action}".*?</form>', html, re.S).group(0)
    return re.findall(r'<option value="([a-z-]+)">([^<]+)</option>', form)


async def test_declining_offers_the_coded_reasons_in_her_language_and_stores_the_code(
        web_world, browser, send_referral_ids, client):
    task_id = send_referral_ids["Task"]
    path = f"/web/referral/{task_id}"
    shelter = browser()
    await shelter.sign_in(web_world.people["shelter"])
    html = (await shelter.get(path)).text
    declines = [code for system, code in codes.expansion("gbv-decline-reason") if system == codes.REFERRAL_OUTCOME]
    assert _options(html, "decline")[:2] == [("no-capacity", "No capacity"), ("not-eligible", "Not eligible")]
    assert [code for code, _ in _options(html, "decline")] == declines
    assert "did-not-attend" not in [code for code, _ in _options(html, "decline")]  # a failure reason, not a decline
    assert "consent-withdrawn" not in [code for code, _ in _options(html, "cancel")]  # the exchange's own
    assert (await shelter.get("/web/lang/ar")).status_code == 303
    arabic = (await shelter.get(path)).text
    assert ("no-capacity", "لا توجد قدرة استيعابية") in _options(arabic, "decline")
    for refused in ({}, {"code": "did-not-attend"}, {"code": "she-was-scared", "text": "words only"}):
        r = await shelter.post(path, {"action": "decline", "version": "1", **refused})
        assert r.status_code == 422 and 'id="message"' in r.text
    assert (await client.get(f"/Task/{task_id}")).json()["status"] == "requested"  # nothing changed
    done = await shelter.post(path, {"action": "decline", "version": "1", "code": "survivor-declined",
                                     "text": "she will call the hotline"})
    assert done.status_code == 303, done.text[-600:]
    task = (await client.get(f"/Task/{task_id}")).json()
    assert task["status"] == "rejected"
    assert task["statusReason"] == {"coding": [{"system": codes.REFERRAL_OUTCOME, "code": "survivor-declined",
                                                "display": "Declined by the survivor"}],
                                    "text": "she will call the hotline"}
    shown = re.search(r'<dd id="reason">(.*?)</dd>', (await shelter.get(path)).text).group(1)
    assert shown == "رفضتها الناجية: she will call the hotline"


async def test_the_owner_records_a_milestone_from_the_list_and_the_exchanges_own_status_stays(
        web_world, browser, send_referral_ids, client):
    task_id = send_referral_ids["Task"]
    path = f"/web/referral/{task_id}"
    task = (await client.get(f"/Task/{task_id}")).json()
    overdue = {"system": codes.REFERRAL_CODES, "code": codes.OVERDUE}
    assert (await client.put(f"/Task/{task_id}", json={**task, "businessStatus": {"coding": [overdue]}})
            ).status_code == 200  # the exchange's sweep marked it
    hotline = browser()
    await hotline.sign_in(web_world.people["hotline"])
    assert "progress" not in _action_ids((await hotline.get(path)).text)  # a milestone is the owner's
    shelter = browser()
    await shelter.sign_in(web_world.people["shelter"])
    html = (await shelter.get(path)).text
    milestones = [code for system, code in codes.expansion("gbv-referral-milestone") if system == codes.REFERRAL_OUTCOME]
    assert [code for code, _ in _options(html, "progress")] == milestones
    for refused in ({}, {"code": "no-capacity"}, {"code": "overdue"}):  # a reason, the exchange's own: not offered
        r = await shelter.post(path, {"action": "progress", "version": "2", **refused})
        assert r.status_code == 422 and 'id="message"' in r.text
    done = await shelter.post(path, {"action": "progress", "version": "2", "code": "contacted-safely",
                                     "text": "at the safe time"})
    assert done.status_code == 303, done.text[-600:]
    stored = (await client.get(f"/Task/{task_id}")).json()
    assert stored["businessStatus"] == {"coding": [overdue, {"system": codes.REFERRAL_OUTCOME, "code": "contacted-safely",
                                                             "display": "Contacted her safely"}],
                                        "text": "at the safe time"}
    assert stored["status"] == "requested"
    shown = re.search(r'<dd id="milestone">(.*?)</dd>', (await shelter.get(path)).text).group(1)
    assert shown == "Contacted her safely: at the safe time"


async def test_the_requester_offers_a_declined_referral_again_from_its_page(web_world, browser, send_referral_ids,
                                                                            client):
    task_id = send_referral_ids["Task"]
    path = f"/web/referral/{task_id}"
    shelter, hotline = browser(), browser()
    await shelter.sign_in(web_world.people["shelter"])
    await hotline.sign_in(web_world.people["hotline"])
    assert "reoffer" not in _action_ids((await hotline.get(path)).text)  # not while it is open
    declined = await shelter.post(path, {"action": "decline", "version": "1", "code": "no-capacity"})
    assert declined.status_code == 303
    assert "reoffer" not in _action_ids((await shelter.get(path)).text)  # the requester's, not the owner's
    html = (await hotline.get(path)).text
    assert "reoffer" in _action_ids(html)
    form = re.search(r'id="action-reoffer".*?</form>', html, re.S).group(0)
    offered = re.findall(r'<option value="([0-9a-f-]+)">', form)
    assert offered == [web_world.ids["svc-shelter"]]  # services with room for this service type
    refused = await hotline.post(path, {"action": "reoffer", "version": "2"})  # nobody else was listed
    assert refused.status_code == 400 and 'id="message"' in refused.text
    done = await hotline.post(path, {"action": "reoffer", "version": "2", "to": web_world.ids["svc-shelter"]})
    assert done.status_code == 303, done.text[-600:]
    new_id = done.headers["location"].rsplit("/", 1)[1]
    assert new_id != task_id
    new = (await client.get(f"/Task/{new_id}")).json()
    assert (new["status"], new["owner"]) == ("requested", {"reference": f"HealthcareService/{web_world.ids['svc-shelter']}"})
    assert new["extension"][0]["valueReference"] == {"reference": f"Task/{task_id}"}
    assert new_id in (await shelter.get("/web/inbox")).text
