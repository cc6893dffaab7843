"""The referral-overdue topic: the owner is reminded and the requester told when the exchange marks a referral
overdue, and again when it escalates it; no other change of the Task is an event of the topic."""
from __future__ import annotations

from datetime import timedelta

from exchange.fhir.dates import parse_fhir_date
from exchange.notify.topics import OVERDUE_TOPIC, TOPICS
from exchange.referral import deadlines
from exchange.referral.escalation import sweep_referrals
from tests.notify.referrals import create_referral, status_of, subscription
from tests.notify.test_delivery import Receiver

SHELTER_HOOK = "https://shelter.example.org/overdue"
HOTLINE_HOOK = "https://hotline.example.org/overdue"


async def test_overdue_and_escalation_reach_the_owner_and_the_requester(partner, orgs, dispatcher, httpx_mock,
                                                                         exchange, system):
    shelter_hook, hotline_hook = Receiver(httpx_mock, SHELTER_HOOK), Receiver(httpx_mock, HOTLINE_HOOK)
    shelter, hotline = await partner(orgs["shelter"]), await partner(orgs["hotline"])
    for client, hook, criteria in ((shelter, SHELTER_HOOK, f"Task?owner=Organization/{orgs['shelter']}"),
                                   (hotline, HOTLINE_HOOK, f"Task?requester=Organization/{orgs['hotline']}")):
        r = await client.post("/Subscription", json=subscription(hook, [criteria], topic=OVERDUE_TOPIC.canonical))
        assert r.status_code == 201, r.text
    referral = await create_referral(hotline, orgs["hotline"], orgs["shelter"])
    task_id = referral["task"]["id"]
    r = await shelter.put(f"/Task/{task_id}", json=(await shelter.get(f"/Task/{task_id}")).json() | {
        "status": "received"})  # an ordinary change: not an event of this topic
    assert r.status_code == 200, r.text
    await dispatcher.run_until_idle()
    assert shelter_hook.bundles("event-notification") == hotline_hook.bundles("event-notification") == []

    _, action = deadlines.stored_of((await system.get(f"/Task/{task_id}")).json())
    late = parse_fhir_date(action)[1] + timedelta(minutes=1)
    exchange.settings.coordinating_organization = orgs["clinic"]
    assert await sweep_referrals(exchange, now=late) == (1, 0)  # reminded; escalated only after the delay
    await dispatcher.run_until_idle()
    delay = timedelta(hours=exchange.settings.referral_escalation_hours)
    assert await sweep_referrals(exchange, now=late + delay) == (0, 1)
    await dispatcher.run_until_idle()
    for hook in (shelter_hook, hotline_hook):
        events = [e for b in hook.bundles("event-notification") for e in status_of(b)["events"]]
        assert [e["event-number"] for e in events] == ["1", "2"]
        assert all(e["focus"]["reference"].endswith(f"/Task/{task_id}") for e in events)
    assert OVERDUE_TOPIC.canonical in TOPICS
