"""Prometheus metrics (exchange.ops.metrics, exchange.ops.counters): the families and label sets an operator
alerts on, and never an id, an organisation, a client or a query value in them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exchange.referral.overdue import sweep_overdue
from tests.notify.referrals import SURVIVOR_NAME, create_referral, subscription
from tests.notify.test_delivery import Receiver

ROOT = "http://127.0.0.1:8080"
HOOK = "https://shelter.example.org/fhir-hook"
LABELS = {
    "exchange_http_request_duration_seconds": {"method", "route", "status"},
    "exchange_oauth_requests_total": {"endpoint", "outcome"},
    "exchange_notification_delivery_attempts_total": {"kind", "outcome"},
    "exchange_sweep_last_run_timestamp_seconds": {"sweep"},
    "exchange_ready": {"check"},
    "exchange_notification_backlog": set(),
    "exchange_notification_held": set(),
    "exchange_notification_oldest_pending_age_seconds": set(),
}


async def scrape(app, address: str = "127.0.0.1") -> httpx.Response:  # noqa: ANN001
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=ROOT) as http:
        return await http.get("/metrics")


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels) -> float:  # noqa: ANN003
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_name_their_families_with_fixed_label_sets_and_no_identifying_values(
        app, exchange, system, orgs, partner, dispatcher, httpx_mock):
    Receiver(httpx_mock, HOOK, [200, 503])  # handshake accepted, first event refused, then accepted
    before = (await scrape(app)).text
    hotline = await partner(orgs["hotline"])
    r = await system.post("/Subscription", json=subscription(HOOK, [f"Task?owner=Organization/{orgs['shelter']}"]))
    sid = r.json()["id"]
    referral = await create_referral(hotline, orgs["hotline"], orgs["shelter"])
    assert (await hotline.get("/Patient", params={"name": SURVIVOR_NAME})).status_code == 200
    assert (await hotline.get("/Patient/does-not-exist")).status_code == 404
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ROOT) as raw:
        refused = await raw.post("/auth/token", data={"grant_type": "client_credentials"})
    assert refused.status_code in (400, 401)

    waiting = (await scrape(app)).text  # the handshake and the events wait for the dispatcher
    assert value(waiting, "exchange_notification_backlog") >= 1
    assert value(waiting, "exchange_notification_oldest_pending_age_seconds") >= 0
    await dispatcher.run_until_idle()
    later = datetime.now(timezone.utc) + timedelta(days=30)  # past every deadline of the new referral
    assert await sweep_overdue(exchange, now=later) == 1  # marks the Task overdue: one more event, left waiting
    response = await scrape(app)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, labels in LABELS.items():
        family = families[name.removesuffix("_total")]
        assert family.samples, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)
    assert families["exchange_http_request_duration_seconds"].type == "histogram"

    def delta(name: str, **labels) -> float:  # noqa: ANN003
        return value(text, name, **labels) - value(before, name, **labels)

    assert delta("exchange_http_request_duration_seconds_count", method="GET", route="/fhir/{resource_type}/{resource_id}",
                 status="404") == 1
    assert delta("exchange_oauth_requests_total", endpoint="token", outcome="ok") == 1
    assert delta("exchange_oauth_requests_total", endpoint="token", outcome="invalid_request") + \
        delta("exchange_oauth_requests_total", endpoint="token", outcome="invalid_client") == 1
    assert delta("exchange_notification_delivery_attempts_total", kind="handshake", outcome="delivered") == 1
    assert delta("exchange_notification_delivery_attempts_total", kind="event-notification",
                 outcome="http-5xx") == 1
    assert delta("exchange_notification_delivery_attempts_total", kind="event-notification",
                 outcome="delivered") == 1
    assert value(text, "exchange_notification_backlog") == 1
    assert value(text, "exchange_ready", check="database") == 1
    assert value(text, "exchange_sweep_last_run_timestamp_seconds", sweep="overdue") > 0

    identifying = [*orgs.values(), sid, hotline.client_id, hotline.access_token[:40], SURVIVOR_NAME, "Zahra",
                   "National GBV Hotline", "Safe House", *(r["id"] for r in referral.values())]
    for secret in identifying:
        assert secret not in text, secret


async def test_metrics_refuse_addresses_outside_the_allowed_networks(app):
    r = await scrape(app, "203.0.113.9")
    assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"
    assert "exchange_" not in r.text


class TestSwitchedOff:
    @pytest.fixture
    def settings(self, settings):  # noqa: ANN001, ANN201 - the notify settings, with metrics switched off
        return settings.model_copy(update={"metrics_enabled": False})

    async def test_metrics_can_be_switched_off(self, app):  # noqa: ANN001
        assert (await scrape(app)).status_code == 404
