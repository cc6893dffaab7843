"""Which subscriptions a write notifies comes from its process's copy of the live subscriptions, read again whenever
the subscriptions' generation moved (exchange.notify.outbox). Two exchanges over one database stand for two server
processes (each its own copy, engine and pool): a Subscription created, switched off, re-requested, deleted,
activated or errored through one is seen by the next write through the other. Writes carry real bearer tokens,
since the bearer check is what reads the generation along."""
from __future__ import annotations

import httpx
import orjson
import pytest

from exchange.main import build, create_app
from tests.conftest import BASE
from tests.notify.referrals import create_referral, create_task, status_of, subscription
from tests.referral import world

OK_HOOK = "https://hotline.example.org/hook"
FAILING_HOOK = "https://hotline.example.org/broken"


@pytest.fixture
async def other(settings, dns):
    """A second server process over the same database: its own Exchange, app and copy of the subscriptions."""
    from exchange.egress import egress

    built = build(settings)
    egress(built).resolver = dns.resolve
    application = create_app(settings, built)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def hotline(partner, orgs, other):
    """The hotline's partner client on the first process and, with the same access token, on the other."""
    here = await partner(orgs["hotline"])
    transport = httpx.ASGITransport(app=other, client=("127.0.0.1", 50001))
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=here.headers) as there:
        yield here, there


def _task(orgs, referral) -> dict:  # noqa: ANN001
    return world.task(f"Patient/{referral['patient']['id']}", f"ServiceRequest/{referral['request']['id']}",
                      orgs["hotline"], f"Organization/{orgs['shelter']}")


def _mine(orgs) -> list[str]:
    return [f"Task?requester=Organization/{orgs['hotline']}"]


async def _events(client: httpx.AsyncClient, sid: str) -> tuple[str, int]:
    r = await client.get(f"/Subscription/{sid}/$status")
    assert r.status_code == 200, r.text
    status = status_of(r.json())
    return status["status"], int(status["events-since-subscription-start"])


async def _set_status(client: httpx.AsyncClient, sid: str, status: str) -> None:
    current = (await client.get(f"/Subscription/{sid}")).json()
    r = await client.put(f"/Subscription/{sid}", json=dict(current, status=status))
    assert r.status_code == 200, r.text


async def test_a_subscription_changed_in_one_process_decides_the_next_write_in_another(orgs, hotline):
    here, there = hotline
    referral = await create_referral(there, orgs["hotline"], orgs["shelter"])  # (the other's copy: none live)
    task = (referral["request"]["id"], referral["patient"]["id"])
    r = await here.post("/Subscription", json=subscription("https://hotline.example.org/hook", _mine(orgs)))
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    await create_task(there, orgs["hotline"], orgs["shelter"], *task)
    assert await _events(here, sid) == ("requested", 1)

    await _set_status(here, sid, "off")
    await create_task(there, orgs["hotline"], orgs["shelter"], *task)
    assert await _events(here, sid) == ("off", 1)

    await _set_status(here, sid, "requested")
    await create_task(there, orgs["hotline"], orgs["shelter"], *task)
    assert await _events(there, sid) == ("requested", 2)

    assert (await here.delete(f"/Subscription/{sid}")).status_code == 204
    other = (await there.post("/Subscription", json=subscription("https://hotline.example.org/b", _mine(orgs)))
             ).json()["id"]
    await create_task(there, orgs["hotline"], orgs["shelter"], *task)  # (the other's own: read again there too)
    await create_task(here, orgs["hotline"], orgs["shelter"], *task)
    assert await _events(here, other) == ("requested", 2)
    assert (await here.get(f"/Subscription/{sid}/$status")).status_code == 404


async def test_the_dispatchers_status_changes_reach_every_process(orgs, hotline, dispatcher, httpx_mock):
    """Activated and errored by the dispatcher (a background job, in the first process): both still get events
    (an errored one keeps them for later), written through the other process, whose copy predates both."""
    httpx_mock.add_callback(lambda request: httpx.Response(200), url=OK_HOOK, is_reusable=True, is_optional=True)
    httpx_mock.add_callback(lambda request: httpx.Response(500), url=FAILING_HOOK, is_reusable=True,
                            is_optional=True)
    here, there = hotline
    referral = await create_referral(there, orgs["hotline"], orgs["shelter"])
    sids = [(await here.post("/Subscription", json=subscription(hook, _mine(orgs)))).json()["id"]
            for hook in (OK_HOOK, FAILING_HOOK)]
    await dispatcher.run_until_idle()
    assert [(await _events(here, sid))[0] for sid in sids] == ["active", "error"]

    await create_task(there, orgs["hotline"], orgs["shelter"], referral["request"]["id"], referral["patient"]["id"])
    assert [await _events(there, sid) for sid in sids] == [("active", 1), ("error", 1)]
    await dispatcher.run_until_idle()
    delivered = [orjson.loads(request.content) for request in httpx_mock.get_requests(url=OK_HOOK)]
    assert [status_of(b)["type"] for b in delivered] == ["handshake", "event-notification"]


async def _subscription_then_task(client: httpx.AsyncClient, orgs, kind: str) -> str:  # noqa: ANN001
    """A Bundle of `kind` that creates a Subscription and then a Task it matches, through this process whose copy
    was read before; the new Subscription's id."""
    referral = await create_referral(client, orgs["hotline"], orgs["shelter"])  # (the copy: none live)
    body = {"resourceType": "Bundle", "type": kind, "entry": [
        {"resource": subscription(f"https://hotline.example.org/{kind}", _mine(orgs)),
         "request": {"method": "POST", "url": "Subscription"}},
        {"resource": _task(orgs, referral), "request": {"method": "POST", "url": "Task"}}]}
    r = await client.post("", json=body)
    assert r.status_code == 200, r.text
    assert [e["response"]["status"][:3] for e in r.json()["entry"]] == ["201", "201"], r.text
    return r.json()["entry"][0]["response"]["location"].split("/")[1]


async def test_a_batch_entry_is_notified_to_the_subscription_an_earlier_entry_created(orgs, hotline):
    """The generation the bearer check read is the batch's first entry's: the next entry reads the subscriptions
    itself, so it sees the Subscription the first one committed."""
    here, _ = hotline
    sid = await _subscription_then_task(here, orgs, "batch")
    assert await _events(here, sid) == ("requested", 1)


async def test_a_transaction_notifies_the_subscription_it_creates(orgs, hotline):
    """The unit's own Subscription is not in any process's copy yet: a unit that wrote one asks its transaction."""
    here, _ = hotline
    sid = await _subscription_then_task(here, orgs, "transaction")
    assert await _events(here, sid) == ("requested", 1)
