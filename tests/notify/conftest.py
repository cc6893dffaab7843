"""Fixtures for notification tests: settings with a fast dispatcher, partner clients, a dispatcher the test drives,
and realistic referrals (Patient + Consent naming the receiver + ServiceRequest + Task)."""
from __future__ import annotations

import httpx
import pytest
from fastapi import Request

from exchange.context import RequestContext, system_context
from exchange.notify.dispatcher import Dispatcher
from exchange.settings import Settings
from tests.conftest import BASE

from tests.referral.world import service

PARTNER_SCOPES = ("system/Patient.cruds system/Consent.cruds system/ServiceRequest.cruds system/Task.cruds "
                  "system/Subscription.cruds system/Organization.rs")


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    """The test dispatcher is driven by each test (not the server's): fast polls, immediate retries."""
    return Settings(database_url=database_url, state_dir=tmp_path / "state", host="127.0.0.1", port=8080,
                    notify_dispatch_in_server=False, notify_allow_loopback=True, notify_poll_interval=0.02,
                    notify_retry_base=0.0, notify_retry_max_delay=0.0, notify_min_heartbeat=1,
                    notify_lease_seconds=5.0)


@pytest.fixture
async def partner(make_client):
    """`await partner(org_id)` -> an HTTP client of that organisation with a real partner access token."""
    clients: dict[str, httpx.AsyncClient] = {}

    async def get(organization_id: str) -> httpx.AsyncClient:
        if organization_id not in clients:
            clients[organization_id] = await make_client(organization_id, role="partner", scopes=PARTNER_SCOPES)
        return clients[organization_id]

    return get


@pytest.fixture
async def system(app):
    """A client acting as the exchange itself when it sends no token; token-bearing clients stay themselves."""
    from exchange.auth.bearer import bearer_context
    from exchange.kernel.caller import request_context

    async def context(request: Request) -> RequestContext:
        if request.headers.get("authorization"):
            return await bearer_context(request)
        return system_context(remote_addr="127.0.0.1")

    app.dependency_overrides[request_context] = context
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE,
                                 headers={"Content-Type": "application/fhir+json"}) as http:
        yield http


@pytest.fixture
async def dispatcher(app, exchange):
    d = Dispatcher(exchange, worker_id="test-dispatcher")
    yield d
    await d.stop()


@pytest.fixture
async def orgs(system) -> dict[str, str]:
    """A hotline (sends referrals), a shelter (receives them) and a clinic (another organisation)."""
    ids = {}
    for key, name in (("hotline", "National GBV Hotline"), ("shelter", "Safe House Shelter"),
                      ("clinic", "Riverside Clinic")):
        r = await system.post("/Organization", json={"resourceType": "Organization", "name": name, "active": True})
        assert r.status_code == 201, r.text
        ids[key] = r.json()["id"]
        # the directory entry a referral is routed to (exchange.referral.routing)
        r = await system.post("/HealthcareService", json=service(ids[key], ["safety-shelter"]))
        assert r.status_code == 201, r.text
    return ids


@pytest.fixture
def receiver():
    from tests.notify.receiver import LoopbackReceiver

    r = LoopbackReceiver()
    yield r
    r.close()
