"""Handshakes, event notifications, retries and errors, against receivers mocked with pytest-httpx."""
from __future__ import annotations

import httpx
import orjson
import pytest
from sqlalchemy import delete

from exchange.notify.signing import SIGNATURE_HEADER, verify
from exchange.store.tables import resource_party
from tests.notify.referrals import (SAFE_WORD, SR_TOPIC, SURVIVOR_NAME, SURVIVOR_PHONE, create_referral,
                                    create_task, status_of, subscription)

SHELTER_HOOK = "https://shelter.example.org/fhir-hook"
CLINIC_HOOK = "https://clinic.example.org/hook"


class Receiver:
    """Answers deliveries with a script of outcomes (status codes or exceptions), then 200; records each body."""

    def __init__(self, httpx_mock, url: str, script: list | None = None):
        self.url, self.script, self.received = url, list(script or []), []
        httpx_mock.add_callback(self._answer, url=url, is_reusable=True, is_optional=True)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        outcome = self.script.pop(0) if self.script else 200
        self.received.append(request)
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome)

    def bundles(self, kind: str | None = None) -> list[dict]:
        out = [orjson.loads(r.content) for r in self.received]
        return [b for b in out if kind is None or status_of(b)["type"] == kind]

    def event_numbers(self) -> list[int]:
        return [int(e["event-number"]) for b in self.bundles("event-notification") for e in status_of(b)["events"]]


async def _subscribe(client, endpoint: str, owner: str, **kwargs) -> str:
    r = await client.post("/Subscription", json=subscription(endpoint, [f"Task?owner=Organization/{owner}"],
                                                             **kwargs))
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_handshake_success_activates_and_is_signed(system, orgs, dispatcher, exchange, httpx_mock):
    shelter = Receiver(httpx_mock, SHELTER_HOOK)
    sid = await _subscribe(system, SHELTER_HOOK, orgs["shelter"], header=["Authorization: Bearer shelter-secret"])
    assert (await system.get(f"/Subscription/{sid}")).json()["status"] == "requested"
    await dispatcher.run_until_idle()
    [handshake] = shelter.received
    status = status_of(orgjson := orjson.loads(handshake.content))
    assert orgjson["type"] == "history"
    assert status["type"] == "handshake" and status["status"] == "requested"
    assert status["subscription"]["reference"].endswith(f"/Subscription/{sid}")
    assert status["events-since-subscription-start"] == "0"
    assert handshake.headers["authorization"] == "Bearer shelter-secret"
    assert handshake.headers["content-type"].startswith("application/fhir+json")
    jwks = await exchange.keys.public_jwks()
    assert verify(handshake.headers[SIGNATURE_HEADER], handshake.content, jwks)
    assert not verify(handshake.headers[SIGNATURE_HEADER], handshake.content + b" ", jwks)
    stored = (await system.get(f"/Subscription/{sid}")).json()
    assert stored["status"] == "active" and stored["meta"]["versionId"] == "2"


@pytest.mark.parametrize("failure", [503, httpx.ConnectError("refused")])
async def test_handshake_failure_puts_subscription_in_error(system, orgs, dispatcher, httpx_mock, failure):
    shelter = Receiver(httpx_mock, SHELTER_HOOK, [failure])
    sid = await _subscribe(system, SHELTER_HOOK, orgs["shelter"])
    await dispatcher.run_until_idle()
    assert len(shelter.received) == 1
    stored = (await system.get(f"/Subscription/{sid}")).json()
    assert stored["status"] == "error"
    assert "handshake failed" in stored["error"]
    # events that happen while in error are kept (numbered), not sent
    hotline = orgs["hotline"]
    await create_referral(system, hotline, orgs["shelter"])
    await dispatcher.run_until_idle()
    assert len(shelter.received) == 1
    status = status_of((await system.get(f"/Subscription/{sid}/$status")).json())
    assert status["status"] == "error" and status["events-since-subscription-start"] == "1"


async def test_id_only_notification_reaches_the_receiver_and_nobody_else(partner, orgs, dispatcher, httpx_mock):
    shelter_hook = Receiver(httpx_mock, SHELTER_HOOK)
    clinic_hook = Receiver(httpx_mock, CLINIC_HOOK)
    shelter_sid = await _subscribe((await partner(orgs["shelter"])), SHELTER_HOOK, orgs["shelter"])
    await _subscribe((await partner(orgs["clinic"])), CLINIC_HOOK, orgs["clinic"])
    referral = await create_referral((await partner(orgs["hotline"])), orgs["hotline"], orgs["shelter"])
    await dispatcher.run_until_idle()
    assert len(clinic_hook.bundles("event-notification")) == 0
    [bundle] = shelter_hook.bundles("event-notification")
    status = status_of(bundle)
    assert status["subscription"]["reference"].endswith(f"/Subscription/{shelter_sid}")
    assert status["status"] == "active" and status["events-since-subscription-start"] == "1"
    [event] = status["events"]
    task_url = f"http://127.0.0.1:8080/fhir/Task/{referral['task']['id']}"
    assert event["event-number"] == "1" and event["focus"]["reference"] == task_url
    assert event["timestamp"].endswith("Z")
    focus = bundle["entry"][1]
    assert focus["fullUrl"] == task_url and "resource" not in focus
    assert focus["request"] == {"method": "POST", "url": "Task"}
    raw = shelter_hook.received[-1].content.decode()
    for secret in (SURVIVOR_NAME, SURVIVOR_PHONE, SAFE_WORD, referral["patient"]["id"], "HL-2024-0042"):
        assert secret not in raw


async def test_owner_accepting_notifies_the_requester(partner, orgs, dispatcher, httpx_mock):
    hotline_hook = Receiver(httpx_mock, "https://hotline.example.org/hook")
    hotline = await partner(orgs["hotline"])
    r = await hotline.post("/Subscription", json=subscription(
        "https://hotline.example.org/hook", [f"Task?requester=Organization/{orgs['hotline']}&status=accepted"]))
    assert r.status_code == 201, r.text
    referral = await create_referral(hotline, orgs["hotline"], orgs["shelter"])
    task = referral["task"] | {"status": "accepted"}
    r = await (await partner(orgs["shelter"])).put(f"/Task/{task['id']}", json=task)
    assert r.status_code == 200, r.text
    await dispatcher.run_until_idle()
    [bundle] = hotline_hook.bundles("event-notification")
    assert bundle["entry"][1]["request"] == {"method": "PUT", "url": f"Task/{task['id']}"}
    assert bundle["entry"][1]["response"]["etag"] == 'W/"2"'


async def test_retries_after_500s_and_time_outs_then_succeeds(system, orgs, dispatcher, httpx_mock):
    shelter = Receiver(httpx_mock, SHELTER_HOOK, [200, 500, httpx.ReadTimeout("slow"), 502])
    sid = await _subscribe(system, SHELTER_HOOK, orgs["shelter"], timeout=2)
    await create_referral(system, orgs["hotline"], orgs["shelter"])
    await dispatcher.run_until_idle()
    events = shelter.bundles("event-notification")
    assert len(events) == 4  # three failed attempts, then success, all the same event
    assert shelter.event_numbers() == [1, 1, 1, 1]
    stored = (await system.get(f"/Subscription/{sid}")).json()
    assert stored["status"] == "active" and "error" not in stored


async def test_later_events_wait_for_the_failing_one(system, orgs, exchange, httpx_mock):
    """Nothing behind a failing event is sent: the receiver sees 1, 1, 2, 3, never 2 before 1."""
    from exchange.notify.dispatcher import Dispatcher

    exchange.settings.notify_retry_base = 60.0
    exchange.settings.notify_retry_max_delay = 60.0
    shelter = Receiver(httpx_mock, SHELTER_HOOK, [200, 500])
    await _subscribe(system, SHELTER_HOOK, orgs["shelter"])
    referral = await create_referral(system, orgs["hotline"], orgs["shelter"])
    for _ in range(2):
        await create_task(system, orgs["hotline"], orgs["shelter"], referral["request"]["id"],
                          referral["patient"]["id"])
    dispatcher = Dispatcher(exchange)
    await dispatcher.run_until_idle()
    assert shelter.event_numbers() == [1]  # failed; 2 and 3 wait behind it until the retry is due
    from exchange.notify.tables import subscription_state
    from sqlalchemy import update
    async with exchange.db.transaction() as conn:
        await conn.execute(update(subscription_state).values(retry_at=None))
    await dispatcher.run_until_idle()
    await dispatcher.stop()
    assert shelter.event_numbers() == [1, 1, 2, 3]


async def test_repeated_failure_moves_subscription_to_error_and_reactivation_delivers_backlog(
        system, orgs, exchange, dispatcher, httpx_mock):
    exchange.settings.notify_retry_period = 0.0
    shelter = Receiver(httpx_mock, SHELTER_HOOK, [200, 500])
    sid = await _subscribe(system, SHELTER_HOOK, orgs["shelter"])
    await create_referral(system, orgs["hotline"], orgs["shelter"])
    await dispatcher.run_until_idle()
    stored = (await system.get(f"/Subscription/{sid}")).json()
    assert stored["status"] == "error"
    assert "HTTP 500" in stored["error"]
    referral = await create_referral(system, orgs["hotline"], orgs["shelter"])  # event 2, while in error
    await dispatcher.run_until_idle()
    assert shelter.event_numbers() == [1]
    stored["status"] = "requested"
    assert (await system.put(f"/Subscription/{sid}", json=stored)).status_code == 200
    await dispatcher.run_until_idle()
    # failed attempt on 1 and nothing else while in error, then handshake, then 1 and 2 in order
    assert [status_of(b)["type"] for b in shelter.bundles()] == ["handshake", "event-notification", "handshake",
                                                                  "event-notification", "event-notification"]
    assert shelter.event_numbers() == [1, 1, 2]
    assert (await system.get(f"/Subscription/{sid}")).json()["status"] == "active"
    assert referral


async def test_max_count_batches_events_in_one_notification(system, orgs, dispatcher, httpx_mock):
    shelter = Receiver(httpx_mock, SHELTER_HOOK)
    await _subscribe(system, SHELTER_HOOK, orgs["shelter"], max_count=10)
    referral = await create_referral(system, orgs["hotline"], orgs["shelter"])
    for _ in range(4):
        await create_task(system, orgs["hotline"], orgs["shelter"], referral["request"]["id"],
                          referral["patient"]["id"])
    await dispatcher.run_until_idle()
    [bundle] = shelter.bundles("event-notification")
    assert [e["event-number"] for e in status_of(bundle)["events"]] == ["1", "2", "3", "4", "5"]
    assert len(bundle["entry"]) == 6


async def test_authorisation_is_checked_again_when_sending(system, partner, orgs, exchange, dispatcher, httpx_mock):
    shelter = Receiver(httpx_mock, SHELTER_HOOK)
    shelter_client = await partner(orgs["shelter"])
    sid = await _subscribe(shelter_client, SHELTER_HOOK, orgs["shelter"])
    r = await system.post("/Subscription", json=subscription(SHELTER_HOOK, []))  # the exchange's own: no org
    assert r.status_code == 201
    referral = await create_referral(system, orgs["hotline"], orgs["shelter"])
    await dispatcher.run_until_idle()
    shelter.received.clear()
    task = await create_task(system, orgs["hotline"], orgs["shelter"], referral["request"]["id"],
                             referral["patient"]["id"])
    # the shelter stops being a party of the new Task (e.g. consent withdrawn) before the dispatcher runs
    async with exchange.db.transaction() as conn:
        await conn.execute(delete(resource_party).where(resource_party.c.resource_type == "Task",
                                                        resource_party.c.resource_id == task["id"],
                                                        resource_party.c.organization_id == orgs["shelter"]))
    await dispatcher.run_until_idle()
    subscribers = {status_of(b)["subscription"]["reference"].rsplit("/", 1)[-1]
                   for b in shelter.bundles("event-notification")}
    assert sid not in subscribers  # withheld from the shelter; the exchange's own subscription still got it
    assert len(subscribers) == 1
    replay = (await shelter_client.get(f"/Subscription/{sid}/$events")).json()
    assert [e["event-number"] for e in status_of(replay)["events"]] == ["1"]


async def test_heartbeat_is_sent_when_nothing_happens(system, orgs, exchange, dispatcher, httpx_mock):
    from sqlalchemy import update

    from exchange.notify.tables import subscription_state

    shelter = Receiver(httpx_mock, SHELTER_HOOK)
    await _subscribe(system, SHELTER_HOOK, orgs["shelter"], heartbeat=60)
    await dispatcher.run_until_idle()
    assert [status_of(b)["type"] for b in shelter.bundles()] == ["handshake"]
    async with exchange.db.transaction() as conn:  # a minute passes
        await conn.execute(update(subscription_state).values(next_heartbeat=subscription_state.c.created))
    await dispatcher.run_until_idle()
    [heartbeat] = shelter.bundles("heartbeat")
    status = status_of(heartbeat)
    assert status["status"] == "active" and status["events"] == [] and len(heartbeat["entry"]) == 1


async def test_one_transaction_with_two_tasks_gives_two_consecutive_events(system, orgs, dispatcher, httpx_mock):
    shelter = Receiver(httpx_mock, SHELTER_HOOK)
    await _subscribe(system, SHELTER_HOOK, orgs["shelter"])
    referral = await create_referral(system, orgs["hotline"], orgs["shelter"])  # event 1
    task = {k: v for k, v in referral["task"].items() if k not in ("id", "meta")}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-00000000000{i}", "resource": task,
         "request": {"method": "POST", "url": "Task"}} for i in (1, 2)]}
    r = await system.post("", json=bundle)
    assert r.status_code == 200, r.text
    created = [e["response"]["location"].split("/")[1] for e in r.json()["entry"]]
    await dispatcher.run_until_idle()
    assert shelter.event_numbers() == [1, 2, 3]
    focus = [status_of(b)["events"][0]["focus"]["reference"].rsplit("/", 1)[-1]
             for b in shelter.bundles("event-notification")]
    assert focus[1:] == created


async def test_consent_withdrawn_before_sending_withholds_the_request_but_tells_the_task(partner, orgs, dispatcher,
                                                                                          httpx_mock):
    """Authorisation at send time, through the real withdrawal path: the shelter loses the ServiceRequest (its
    queued event is withheld, and not replayed) but still learns that its Task was cancelled."""
    from tests.notify.referrals import SR_TOPIC

    shelter_hook = Receiver(httpx_mock, SHELTER_HOOK)
    shelter = await partner(orgs["shelter"])
    hotline = await partner(orgs["hotline"])
    task_sid = await _subscribe(shelter, SHELTER_HOOK, orgs["shelter"])
    r = await shelter.post("/Subscription", json=subscription(
        SHELTER_HOOK, [f"ServiceRequest?performer=Organization/{orgs['shelter']}"], topic=SR_TOPIC))
    request_sid = r.json()["id"]
    await dispatcher.run_until_idle()  # handshakes
    referral = await create_referral(hotline, orgs["hotline"], orgs["shelter"])
    consent = (await hotline.get(f"/Consent/{referral['consent']['id']}")).json()
    r = await hotline.put(f"/Consent/{consent['id']}", json={**consent, "status": "inactive"})
    assert r.status_code == 200, r.text
    await dispatcher.run_until_idle()
    by_subscription: dict[str, list[str]] = {}
    for bundle in shelter_hook.bundles("event-notification"):
        sid = status_of(bundle)["subscription"]["reference"].rsplit("/", 1)[-1]
        by_subscription.setdefault(sid, []).extend(e["request"]["method"] for e in bundle["entry"][1:])
    assert by_subscription == {task_sid: ["POST", "PUT"]}  # created, then cancelled on withdrawal
    replay = (await shelter.get(f"/Subscription/{request_sid}/$events")).json()
    assert status_of(replay)["events"] == [] and status_of(replay)["events-since-subscription-start"] == "1"


async def test_subscription_past_its_end_gets_nothing_and_is_turned_off(system, orgs, dispatcher, httpx_mock):
    shelter = Receiver(httpx_mock, SHELTER_HOOK)
    sid = await _subscribe(system, SHELTER_HOOK, orgs["shelter"])
    await dispatcher.run_until_idle()
    current = (await system.get(f"/Subscription/{sid}")).json()
    r = await system.put(f"/Subscription/{sid}", json={**current, "end": "2020-01-01T00:00:00Z"})
    assert r.status_code == 200, r.text
    await create_referral(system, orgs["hotline"], orgs["shelter"])
    await dispatcher.run_until_idle()
    assert shelter.bundles("event-notification") == []
    assert status_of((await system.get(f"/Subscription/{sid}/$status")).json())["events-since-subscription-start"] \
        == "0"
    r = await system.post("/Subscription", json={**subscription(SHELTER_HOOK, [
        f"Task?owner=Organization/{orgs['shelter']}"]), "end": "yesterday"})
    assert r.status_code in (400, 422)


async def test_pending_handshake_after_end_turns_the_subscription_off(system, orgs, dispatcher, httpx_mock):
    shelter = Receiver(httpx_mock, SHELTER_HOOK)
    r = await system.post("/Subscription", json={**subscription(SHELTER_HOOK, [
        f"Task?owner=Organization/{orgs['shelter']}"]), "end": "2020-01-01T00:00:00Z"})
    sid = r.json()["id"]
    await dispatcher.run_until_idle()
    assert shelter.received == []
    assert (await system.get(f"/Subscription/{sid}")).json()["status"] == "off"


async def test_a_provider_that_lost_an_open_referral_to_a_claim_hears_no_more(system, partner, orgs, dispatcher,
                                                                              httpx_mock):
    """Two shelters are offered an open referral; once one claims it, the other's subscription gets nothing more."""
    clinic = Receiver(httpx_mock, CLINIC_HOOK)
    referral = await create_referral(system, orgs["hotline"], orgs["shelter"])
    consent = dict(referral["consent"])
    consent["provision"]["actor"].append({**consent["provision"]["actor"][0],
                                          "reference": {"reference": f"Organization/{orgs['clinic']}"}})
    assert (await system.put(f"/Consent/{consent['id']}", json=consent)).status_code == 200
    request = dict(referral["request"], performer=[{"reference": f"Organization/{orgs['shelter']}"},
                                                   {"reference": f"Organization/{orgs['clinic']}"}])
    r = await system.put(f"/ServiceRequest/{request['id']}", json=request)
    assert r.status_code == 200, r.text
    task = {k: v for k, v in referral["task"].items() if k not in ("id", "meta", "owner")}
    r = await system.post("/Task", json=task)
    assert r.status_code == 201, r.text
    open_task = r.json()
    clinic_client = await partner(orgs["clinic"])
    r = await clinic_client.post("/Subscription", json=subscription(
        CLINIC_HOOK, [f"ServiceRequest?performer=Organization/{orgs['clinic']}"], topic=SR_TOPIC))
    assert r.status_code == 201, r.text

    async def change_request(**changes) -> None:  # noqa: ANN003
        current = (await system.get(f"/ServiceRequest/{request['id']}")).json()
        assert (await system.put(f"/ServiceRequest/{request['id']}", json={**current, **changes})).status_code == 200

    await dispatcher.run_until_idle()
    await change_request(priority="asap")  # while the referral is open the clinic hears of it
    await dispatcher.run_until_idle()
    assert len(clinic.bundles("event-notification")) == 1
    shelter_client = await partner(orgs["shelter"])
    claim = {**open_task, "owner": {"reference": f"Organization/{orgs['shelter']}"}, "status": "accepted"}
    r = await shelter_client.put(f"/Task/{open_task['id']}", json=claim, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200, r.text
    await change_request(priority="stat")
    await dispatcher.run_until_idle()
    assert len(clinic.bundles("event-notification")) == 1
