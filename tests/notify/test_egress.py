"""Notification endpoints under the egress policy (exchange.egress), through HTTP with a partner's real token:
refused at registration (422 naming the element) when they point inward, checked again at every delivery, and
connected only to the address that was checked."""
from __future__ import annotations

import pytest

from exchange.settings import Settings
from tests.dns import PUBLIC
from tests.notify.receiver import LoopbackReceiver
from tests.notify.referrals import create_referral, subscription

SPELLINGS = ["127.1", "0x7f000001", "2130706433", "017700000001", "0", "localhost.", "[::ffff:127.0.0.1]",
             "100.64.0.1", "168.63.129.16", "[2002:7f00:1::1]", "[64:ff9b::a9fe:a9fe]", "[2001::1]",
             "[fd00:ec2::254]"]


def _body(endpoint: str, owner: str) -> dict:
    return subscription(endpoint, [f"Task?owner=Organization/{owner}"])


def _endpoint_refused(r) -> str:
    assert r.status_code == 422, r.text
    [issue] = [i for i in r.json()["issue"] if "Subscription.channel.endpoint" in i.get("expression", [])]
    return issue["diagnostics"]


class TestProductionPolicy:
    """A deployment without the development switch."""

    @pytest.fixture
    def settings(self, database_url, tmp_path):
        return Settings(database_url=database_url, state_dir=tmp_path / "state", host="127.0.0.1", port=8080,
                        notify_dispatch_in_server=False, notify_allow_loopback=False, notify_retry_base=0.0,
                        notify_retry_max_delay=0.0)

    async def test_inward_endpoints_are_refused_at_registration(self, partner, orgs):
        shelter = await partner(orgs["shelter"])
        for host in SPELLINGS:  # one server for all (each spelling's rule: tests/test_egress.py)
            r = await shelter.post("/Subscription", json=_body(f"https://{host}/hook", orgs["shelter"]))
            assert host.strip("[]") not in _endpoint_refused(r), host
        assert not (await shelter.get("/Subscription")).json().get("entry")  # nothing was stored

    async def test_a_name_that_resolves_inward_is_refused_at_registration(self, partner, orgs, dns):
        shelter = await partner(orgs["shelter"])
        for address in ("127.0.0.1", "10.1.2.3", "100.64.0.1", "169.254.169.254", "::1", "2002:a9fe:a9fe::1"):
            dns.set("hooks.shelter.example.org", [address])
            r = await shelter.post("/Subscription", json=_body("https://hooks.shelter.example.org/h",
                                                               orgs["shelter"]))
            assert "resolves to an address" in _endpoint_refused(r), address

    async def test_a_name_that_rebinds_inward_after_registration_is_never_called(self, partner, orgs, dns,
                                                                                   dispatcher, httpx_mock, system):
        dns.set("hooks.shelter.example.org", [PUBLIC], ["127.0.0.1"])
        httpx_mock.add_response(url="https://hooks.shelter.example.org/h", is_optional=True)
        shelter = await partner(orgs["shelter"])
        r = await shelter.post("/Subscription", json=_body("https://hooks.shelter.example.org/h", orgs["shelter"]))
        assert r.status_code == 201, r.text
        await dispatcher.run_until_idle()
        assert httpx_mock.get_requests() == []
        stored = (await shelter.get(f"/Subscription/{r.json()['id']}")).json()
        assert stored["status"] == "error"
        assert "loopback" in stored["error"] and "127.0.0.1" not in stored["error"]


async def test_delivery_connects_to_the_checked_address_with_one_lookup(partner, orgs, dns, dispatcher, system):
    """With the development switch: `hooks.shelter.test` exists only in the injected DNS, so the receiver (a real
    socket on loopback) getting the handshake and the event proves the connection went to the checked address;
    one lookup per delivery shows there is no second resolution to rebind."""
    receiver = LoopbackReceiver()
    try:
        port = receiver.server.server_port
        dns.set("hooks.shelter.test", ["127.0.0.1"])
        shelter = await partner(orgs["shelter"])
        r = await shelter.post("/Subscription", json=_body(f"http://hooks.shelter.test:{port}/h", orgs["shelter"]))
        assert r.status_code == 201, r.text
        assert dns.calls == ["hooks.shelter.test"]  # the registration check
        await dispatcher.run_until_idle()
        await create_referral(system, orgs["hotline"], orgs["shelter"])
        await dispatcher.run_until_idle()
        assert [headers["Host"] for _, _, headers in receiver.received] == [f"hooks.shelter.test:{port}"] * 2
        assert dns.calls == ["hooks.shelter.test"] * 3  # registration, handshake, event
    finally:
        receiver.close()
