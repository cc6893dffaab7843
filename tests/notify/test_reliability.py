"""Delivery that survives a stopped or crashed dispatcher, against a real receiver over loopback."""
from __future__ import annotations

import asyncio
import threading

from exchange.notify.dispatcher import Dispatcher
from tests.notify.referrals import create_referral, create_task, subscription
from tests.waiting import until


async def _three_subscriptions_and_ten_referral_tasks(system, orgs, receiver) -> None:
    filters = ([f"Task?owner=Organization/{orgs['shelter']}"], [f"Task?requester=Organization/{orgs['hotline']}"],
               [f"Task?owner=Organization/{orgs['shelter']}&code=fulfill&status=requested"])
    for i, f in enumerate(filters):
        r = await system.post("/Subscription", json=subscription(receiver.url(f"s{i}"), f))
        assert r.status_code == 201, r.text
    referral = await create_referral(system, orgs["hotline"], orgs["shelter"])
    for _ in range(9):
        await create_task(system, orgs["hotline"], orgs["shelter"], referral["request"]["id"],
                          referral["patient"]["id"])


async def test_dispatcher_stopped_mid_batch_resumes_in_order_without_duplicates(system, orgs, exchange, receiver):
    await _three_subscriptions_and_ten_referral_tasks(system, orgs, receiver)
    reached, release = threading.Event(), threading.Event()

    def hold_fifth_event(_path: str, bundle: dict) -> None:
        if bundle["entry"][0]["resource"]["parameter"][3]["valueCode"] == "event-notification":
            if receiver.event_count() == 4:
                reached.set()
                release.wait(10)

    receiver.before_answer = hold_fifth_event
    first = Dispatcher(exchange, worker_id="first")
    await first.start()
    await until(reached.is_set, "the fifth event delivery")
    stopping = asyncio.create_task(first.stop())  # stop while a delivery is in flight
    await asyncio.sleep(0)
    release.set()
    await stopping
    delivered_before_restart = receiver.event_count()
    assert 5 <= delivered_before_restart < 30  # stopped mid-batch: the rest is still in the outbox

    second = Dispatcher(exchange, worker_id="second")
    await second.run_until_idle()
    await second.stop()
    assert receiver.events() == {f"/s{i}": list(range(1, 11)) for i in range(3)}  # all, in order, once each


async def test_crashed_workers_claim_expires_and_another_delivers(system, orgs, exchange, receiver):
    await _three_subscriptions_and_ten_referral_tasks(system, orgs, receiver)
    exchange.settings.notify_lease_seconds = 0.5
    crashed = Dispatcher(exchange, worker_id="crashed")
    assert len(await crashed.claim(10)) == 3  # claims everything, then dies without delivering
    survivor = Dispatcher(exchange, worker_id="survivor")
    await survivor.run_until_idle()
    assert receiver.received == []  # the claims are still held
    await asyncio.sleep(0.6)
    await survivor.run_until_idle()
    await survivor.stop()
    assert receiver.events() == {f"/s{i}": list(range(1, 11)) for i in range(3)}
    handshakes = [b for _, b, _ in receiver.received if b["entry"][0]["resource"]["parameter"][3]["valueCode"]
                  == "handshake"]
    assert len(handshakes) == 3


async def test_server_runs_its_own_dispatcher_and_stops_it_with_the_server(settings, receiver):
    """The embedded default: `exchange serve` (the app's lifespan) delivers without any worker."""
    import httpx

    from exchange.main import create_app
    from exchange.kernel.caller import request_context
    from exchange.context import system_context
    from exchange.main import build
    from tests.conftest import BASE

    embedded = settings.model_copy(update={"notify_dispatch_in_server": True})
    exchange = build(embedded)
    application = create_app(embedded, exchange)
    application.dependency_overrides[request_context] = lambda: system_context(remote_addr="127.0.0.1")
    async with application.router.lifespan_context(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=BASE) as http:
            r = await http.post("/Subscription", json=subscription(receiver.url("embedded"), []),
                                headers={"Content-Type": "application/fhir+json"})
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
            await until(lambda: len(receiver.received) == 1, "the handshake")
            for _ in range(50):
                if (await http.get(f"/Subscription/{sid}")).json()["status"] == "active":
                    break
                await asyncio.sleep(0.02)
            assert (await http.get(f"/Subscription/{sid}")).json()["status"] == "active"
    assert receiver.received[0][0] == "/embedded"


async def test_deleted_subscription_gets_nothing_more(system, orgs, dispatcher, receiver):
    r = await system.post("/Subscription", json=subscription(receiver.url("gone"),
                                                             [f"Task?owner=Organization/{orgs['shelter']}"]))
    sid = r.json()["id"]
    await create_referral(system, orgs["hotline"], orgs["shelter"])  # queued behind the handshake
    assert (await system.delete(f"/Subscription/{sid}")).status_code == 204
    await create_referral(system, orgs["hotline"], orgs["shelter"])
    await dispatcher.run_until_idle()
    assert receiver.received == []
    assert (await system.get(f"/Subscription/{sid}/$status")).status_code == 404


async def test_a_subscription_the_dispatcher_cannot_read_is_skipped_and_reported(system, orgs, exchange, receiver,
                                                                                 caplog):
    from sqlalchemy import update

    from exchange.notify.tables import subscription_state

    owner = [f"Task?owner=Organization/{orgs['shelter']}"]
    ids = []
    for path in ("bad", "good"):
        r = await system.post("/Subscription", json=subscription(receiver.url(path), owner, heartbeat=1))
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    async with exchange.db.engine.begin() as conn:  # a row no dispatcher can parse (written by an older version)
        await conn.execute(update(subscription_state).where(subscription_state.c.subscription_id == ids[0])
                           .values(spec='{"topic": 1}'))
    referral = await create_referral(system, orgs["hotline"], orgs["shelter"])
    await create_task(system, orgs["hotline"], orgs["shelter"], referral["request"]["id"], referral["patient"]["id"])
    dispatcher = Dispatcher(exchange, worker_id="survivor")
    with caplog.at_level("WARNING", logger="exchange.notify"):
        await dispatcher.run_until_idle()
    await dispatcher.stop()
    assert receiver.events() == {"/good": [1, 2]}
    assert f"skipped Subscription {ids[0]}" in caplog.text
