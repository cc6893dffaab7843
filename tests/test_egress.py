"""The egress policy (exchange.egress) that fences every request to a URL a partner chose: the rule as data, and
the pinned connection through real sockets. The HTTP paths that use it are tested in tests/notify/test_egress.py
and tests/auth/test_jwks_url.py."""
from __future__ import annotations

import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from exchange.egress import EgressPolicy, EgressRefused, address_problem
from tests.dns import PUBLIC, FakeDns

ODD_SPELLINGS = ["127.1", "0x7f000001", "2130706433", "017700000001", "0", "0x7f.1", "127.0.1", "10.1",
                 "3232235521", "0300.0250.0.1", "127.000.000.001"]
INWARD = ["127.0.0.1", "::1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "168.63.129.16",
          "100.64.0.1", "100.100.100.200", "fd00:ec2::254", "fe80::1", "fc00::1", "::ffff:127.0.0.1",
          "::ffff:10.0.0.1", "::127.0.0.1", "2002:7f00:1::1", "2002:a9fe:a9fe::1", "64:ff9b::7f00:1",
          "64:ff9b:1::a00:1", "2001::1", "2001:db8::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "240.0.0.1",
          "255.255.255.255", "192.0.0.192", "198.18.0.1", "100::1", "fec0::1"]


def _policy(dns: FakeDns, allow_loopback: bool = False) -> EgressPolicy:
    return EgressPolicy(allow_loopback, dns.resolve, resolve_timeout=1.0)


@pytest.mark.parametrize("address", INWARD)
def test_addresses_that_are_not_public_unicast_are_refused(address):
    assert address_problem(ipaddress.ip_address(address), allow_loopback=False) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "1.1.1.1"])
def test_public_unicast_addresses_are_allowed(address):
    assert address_problem(ipaddress.ip_address(address), allow_loopback=False) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "127.5.5.5", "::1"])
def test_the_development_switch_allows_loopback_and_nothing_else(address):
    assert address_problem(ipaddress.ip_address(address), allow_loopback=True) is None
    for other in ("10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "100.64.0.1"):
        assert address_problem(ipaddress.ip_address(other), allow_loopback=True) is not None


@pytest.mark.parametrize("host", ODD_SPELLINGS)
@pytest.mark.parametrize("allow_loopback", [False, True])
async def test_odd_ipv4_spellings_are_refused_without_a_lookup(host, allow_loopback):
    dns = FakeDns()
    with pytest.raises(EgressRefused, match="canonical IP address|not a valid URL"):  # ours, or httpx's parser
        await _policy(dns, allow_loopback).check(f"https://{host}/hook")
    assert dns.calls == []


@pytest.mark.parametrize("url", ["https://localhost/h", "https://localhost./h", "https://LocalHost/h",
                                 "https://api.localhost/h", "https://localhost:9/h"])
async def test_localhost_names_are_loopback_whatever_dns_says(url):
    dns = FakeDns()
    dns.set("api.localhost", [PUBLIC])
    with pytest.raises(EgressRefused, match="loopback"):
        await _policy(dns).check(url)
    assert dns.calls == []


@pytest.mark.parametrize("address", INWARD)
async def test_a_name_resolving_inward_is_refused(address):
    dns = FakeDns()
    dns.set("partner.example.org", [address])
    with pytest.raises(EgressRefused):
        await _policy(dns).check("https://partner.example.org/hook")


async def test_one_inward_address_among_public_ones_refuses_the_name():
    dns = FakeDns()
    dns.set("partner.example.org", [PUBLIC, "8.8.8.8", "10.0.0.7"])
    with pytest.raises(EgressRefused, match="not a public unicast"):
        await _policy(dns).check("https://partner.example.org/hook")


@pytest.mark.parametrize("url,reason", [
    ("http://partner.example.org/h", "https"), ("ftp://partner.example.org/", "https"),
    ("https://user:pw@partner.example.org/", "credentials"), ("https://nowhere.invalid/", "does not resolve"),
    ("not a url", "https"), ("https://partner.example.org/#x", "fragment"),
])
async def test_urls_the_exchange_does_not_call(url, reason):
    with pytest.raises(EgressRefused, match=reason):
        await _policy(FakeDns()).check(url)


async def test_a_public_name_passes_with_its_addresses():
    dns = FakeDns()
    dns.set("partner.example.org", [PUBLIC, "2606:4700:4700::1111"])
    target = await _policy(dns).check("https://partner.example.org/hook")
    assert target.host == "partner.example.org" and target.addresses == (PUBLIC, "2606:4700:4700::1111")


async def test_http_to_a_name_is_allowed_only_when_it_resolves_to_loopback_under_the_switch():
    dns = FakeDns()
    dns.set("hook.test", ["127.0.0.1"])
    dns.set("public.test", [PUBLIC])
    assert (await _policy(dns, allow_loopback=True).check("http://hook.test:9/h")).addresses == ("127.0.0.1",)
    with pytest.raises(EgressRefused, match="https"):
        await _policy(dns, allow_loopback=True).check("http://public.test/h")
    with pytest.raises(EgressRefused, match="https"):
        await _policy(dns, allow_loopback=False).check("http://hook.test:9/h")


class _Server:
    """A real HTTP server on loopback that records the Host header of each request."""

    def __init__(self, status: int = 200, body: bytes = b"{}", headers: dict | None = None):
        self.hosts: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.hosts.append(self.headers["Host"])
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                return None

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_port
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


async def test_the_connection_goes_to_the_address_that_was_checked_with_one_lookup(server):
    """`hook.test` exists only in the injected DNS: reaching the server proves the socket went to the checked
    address, and the single lookup shows no second resolution (the rebinding window) happens."""
    dns = FakeDns()
    dns.set("hook.test", ["127.0.0.1"], ["10.9.9.9"])  # a second lookup would get another answer
    async with _policy(dns, allow_loopback=True).client(timeout=2.0) as http:
        r = await http.get(f"http://hook.test:{server.port}/jwks.json")
    assert r.status_code == 200
    assert server.hosts == [f"hook.test:{server.port}"]
    assert dns.calls == ["hook.test"]


async def test_every_request_is_checked_again(server):
    dns = FakeDns()
    dns.set("hook.test", ["127.0.0.1"], ["10.9.9.9"])
    async with _policy(dns, allow_loopback=True).client(timeout=2.0) as http:
        assert (await http.get(f"http://hook.test:{server.port}/a")).status_code == 200
        with pytest.raises(EgressRefused, match="not a public unicast"):
            await http.get(f"http://hook.test:{server.port}/b")
    assert len(server.hosts) == 1


async def test_redirects_are_not_followed():
    s = _Server(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data"})
    try:
        dns = FakeDns()
        dns.set("hook.test", ["127.0.0.1"])
        async with _policy(dns, allow_loopback=True).client(timeout=2.0) as http:
            r = await http.get(f"http://hook.test:{s.port}/")
        assert r.status_code == 302 and len(s.hosts) == 1
    finally:
        s.close()


async def test_read_capped_refuses_a_body_over_the_cap():
    from exchange.egress import read_capped

    s = _Server(body=b"x" * 5000)
    try:
        dns = FakeDns()
        async with _policy(dns, allow_loopback=True).client(timeout=2.0) as http:
            async with http.stream("GET", f"http://127.0.0.1:{s.port}/") as r:
                with pytest.raises(EgressRefused, match="more than 1000 bytes"):
                    await read_capped(r, 1000)
    finally:
        s.close()
