"""$status (type and instance) and $events (replay by event number)."""
from __future__ import annotations

import httpx
import orjson

from tests.notify.referrals import SURVIVOR_NAME, create_referral, create_task, status_of, subscription

HOOK = "https://shelter.example.org/hook"


async def _setup(partner, orgs, dispatcher, httpx_mock, script=()):
    answers = list(script)
    received = []

    def answer(request: httpx.Request) -> httpx.Response:
        received.append(orjson.loads(request.content))
        return httpx.Response(answers.pop(0) if answers else 200)

    httpx_mock.add_callback(answer, url=HOOK, is_reusable=True, is_optional=True)
    shelter = await partner(orgs["shelter"])
    r = await shelter.post("/Subscription", json=subscription(HOOK, [f"Task?owner=Organization/{orgs['shelter']}"]))
    sid = r.json()["id"]
    await dispatcher.run_until_idle()
    return shelter, sid, received


async def test_status_counts_events_and_shows_only_own_subscriptions(partner, orgs, dispatcher, httpx_mock):
    shelter, sid, _ = await _setup(partner, orgs, dispatcher, httpx_mock)
    clinic = await partner(orgs["clinic"])
    r = await clinic.post("/Subscription", json=subscription("https://clinic.example.org/hook",
                                                             [f"Task?owner=Organization/{orgs['clinic']}"]))
    clinic_sid = r.json()["id"]
    hotline = await partner(orgs["hotline"])
    referral = await create_referral(hotline, orgs["hotline"], orgs["shelter"])
    await create_task(hotline, orgs["hotline"], orgs["shelter"], referral["request"]["id"], referral["patient"]["id"])
    await create_referral(hotline, orgs["hotline"], orgs["clinic"])  # not the shelter's
    r = await shelter.get(f"/Subscription/{sid}/$status")
    assert r.status_code == 200
    bundle = r.json()
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    status = status_of(bundle)
    assert status["type"] == "query-status" and status["status"] == "active"
    assert status["events-since-subscription-start"] == "2"
    # type level: only the caller's own subscriptions
    listed = (await shelter.get("/Subscription/$status")).json()
    assert [status_of({"entry": [e]})["subscription"]["reference"].rsplit("/", 1)[-1]
            for e in listed["entry"]] == [sid]
    listed = (await shelter.get("/Subscription/$status", params={"status": "error"})).json()
    assert listed["total"] == 0
    assert (await shelter.get(f"/Subscription/{clinic_sid}/$status")).status_code == 404
    r = await shelter.get("/Subscription/$status", params={"patient": "x"})
    assert r.status_code == 400


async def test_events_replays_a_gap(partner, orgs, dispatcher, httpx_mock):
    shelter, sid, received = await _setup(partner, orgs, dispatcher, httpx_mock)
    hotline = await partner(orgs["hotline"])
    referral = await create_referral(hotline, orgs["hotline"], orgs["shelter"])
    tasks = [referral["task"]]
    for _ in range(3):
        tasks.append(await create_task(hotline, orgs["hotline"], orgs["shelter"], referral["request"]["id"],
                                       referral["patient"]["id"]))
    await dispatcher.run_until_idle()
    assert len(received) == 5  # handshake + 4 events; say the receiver lost 2 and 3
    r = await shelter.get(f"/Subscription/{sid}/$events", params={"eventsSinceNumber": "2",
                                                                   "eventsUntilNumber": "3"})
    assert r.status_code == 200
    bundle = r.json()
    assert bundle["type"] == "history"
    status = status_of(bundle)
    assert status["type"] == "query-event" and status["events-since-subscription-start"] == "4"
    assert [e["event-number"] for e in status["events"]] == ["2", "3"]
    assert [e["focus"]["reference"].rsplit("/", 1)[-1] for e in status["events"]] == [tasks[1]["id"],
                                                                                       tasks[2]["id"]]
    assert [e["fullUrl"].rsplit("/", 1)[-1] for e in bundle["entry"][1:]] == [tasks[1]["id"], tasks[2]["id"]]
    assert SURVIVOR_NAME not in r.text
    # open-ended, empty content, and a full-resource request downgraded to id-only
    r = await shelter.get(f"/Subscription/{sid}/$events", params={"eventsSinceNumber": "3", "content": "empty"})
    status = status_of(r.json())
    assert [e["event-number"] for e in status["events"]] == ["3", "4"] and len(r.json()["entry"]) == 1
    assert all("focus" not in e for e in status["events"])
    r = await shelter.post(f"/Subscription/{sid}/$events", json={"resourceType": "Parameters", "parameter": [
        {"name": "eventsSinceNumber", "valueString": "4"}, {"name": "content", "valueCode": "full-resource"}]})
    assert r.status_code == 200
    assert "resource" not in r.json()["entry"][1] and SURVIVOR_NAME not in r.text
    for bad in ({"eventsSinceNumber": "zero"}, {"eventsUntilNumber": "-1"}, {"content": "all"}):
        r = await shelter.get(f"/Subscription/{sid}/$events", params=bad)
        assert r.status_code == 400, bad
        assert r.json()["resourceType"] == "OperationOutcome"
    assert (await shelter.get("/Subscription/unknown/$events")).status_code == 404


async def test_full_resource_when_the_deployment_allows_it(system, orgs, exchange, dispatcher, httpx_mock):
    exchange.settings.notify_allow_full_resource = True
    received = []
    httpx_mock.add_callback(lambda request: received.append(orjson.loads(request.content)) or httpx.Response(200),
                            url=HOOK, is_reusable=True)
    r = await system.post("/Subscription", json=subscription(HOOK, [f"Task?owner=Organization/{orgs['shelter']}"],
                                                             payload="full-resource"))
    assert r.status_code == 201, r.text
    referral = await create_referral(system, orgs["hotline"], orgs["shelter"])
    await dispatcher.run_until_idle()
    entry = received[-1]["entry"][1]
    assert entry["resource"]["id"] == referral["task"]["id"] and entry["resource"]["meta"]["versionId"] == "1"


async def test_event_numbers_beyond_64_bits_are_400(partner, orgs, dispatcher, httpx_mock):
    shelter, sid, _ = await _setup(partner, orgs, dispatcher, httpx_mock)
    for name in ("eventsSinceNumber", "eventsUntilNumber"):
        r = await shelter.get(f"/Subscription/{sid}/$events", params={name: str(2 ** 63)})
        assert r.status_code == 400, r.text
        assert r.json()["issue"][0]["expression"] == [name]
    r = await shelter.get(f"/Subscription/{sid}/$events", params={"eventsSinceNumber": str(2 ** 63 - 1)})
    assert r.status_code == 200, r.text


async def test_subscription_end_at_the_ends_of_the_calendar_is_accepted(partner, orgs, dispatcher, httpx_mock):
    httpx_mock.add_response(url=HOOK, is_reusable=True, is_optional=True)
    shelter = await partner(orgs["shelter"])
    for end in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59.999Z"):
        body = subscription(HOOK, [f"Task?owner=Organization/{orgs['shelter']}"]) | {"end": end}
        r = await shelter.post("/Subscription", json=body)
        assert r.status_code == 201, r.text
    await dispatcher.run_until_idle()
    statuses = sorted(e["resource"]["status"] for e in (await shelter.get("/Subscription")).json()["entry"])
    assert statuses == ["active", "active", "off"]
