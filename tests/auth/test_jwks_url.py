"""Clients registered by JWKS URL: fetched with a time-out, a size cap, no redirects, never from a private,
link-local or metadata address, cached, and refetched when an assertion names an unknown kid.
Outbound HTTP is answered by pytest-httpx."""
from __future__ import annotations

import httpx
import pytest

from exchange.settings import Settings
from tests.auth.keys import assertion, ec_key, rsa_key, token_form

URL = "https://93.184.215.14/partner/jwks.json"


@pytest.fixture
def settings(database_url, tmp_path):
    return Settings(database_url=database_url, state_dir=tmp_path / "state", host="127.0.0.1", port=8080,
                    jwks_refetch_interval_seconds=0)


@pytest.fixture
async def org(make_org):
    return await make_org("Tamkeen", "livelihood")


async def _token(root, client_id, key):
    return await root.post("/auth/token", data=token_form(assertion(client_id, key)))


async def test_keys_are_fetched_once_and_cached(root, registry, org, httpx_mock):
    key = rsa_key()
    httpx_mock.add_response(url=URL, json=key.jwks)
    client_id = (await registry.add(org, "partner", "system/*.rs", jwks_url=URL)).client_id
    for _ in range(3):
        r = await _token(root, client_id, key)
        assert r.status_code == 200, r.text
    requests = httpx_mock.get_requests()
    assert len(requests) == 1
    assert requests[0].headers["accept"] == "application/json"


async def test_an_unknown_kid_triggers_a_refetch(root, registry, org, httpx_mock):
    old, new = ec_key(), ec_key()
    httpx_mock.add_response(url=URL, json=old.jwks)
    httpx_mock.add_response(url=URL, json={"keys": [old.public_jwk, new.public_jwk]})
    client_id = (await registry.add(org, "partner", "system/*.rs", jwks_url=URL)).client_id
    assert (await _token(root, client_id, old)).status_code == 200
    r = await _token(root, client_id, new)
    assert r.status_code == 200, r.text
    assert len(httpx_mock.get_requests()) == 2


async def test_a_kid_still_unknown_after_the_refetch_is_refused(root, registry, org, httpx_mock):
    key = ec_key()
    httpx_mock.add_response(url=URL, json=key.jwks, is_reusable=True)
    client_id = (await registry.add(org, "partner", "system/*.rs", jwks_url=URL)).client_id
    r = await _token(root, client_id, ec_key())
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert len(httpx_mock.get_requests()) == 2  # fetched, then refetched once for the unknown kid


INWARD_URLS = ["http://93.184.215.14/jwks.json", "https://10.1.2.3/jwks.json", "https://192.168.0.10/jwks.json",
               "https://169.254.169.254/latest/meta-data/jwks", "https://[fd00:ec2::254]/jwks",
               "https://127.0.0.1/jwks.json", "https://[::ffff:10.0.0.1]/jwks.json", "https://0.0.0.0/jwks.json",
               "https://127.1/jwks", "https://0x7f000001/jwks", "https://2130706433/jwks", "https://017700000001/jwks",
               "https://0/jwks", "https://localhost./jwks", "https://100.64.0.1/jwks", "https://168.63.129.16/jwks",
               "https://[2002:a9fe:a9fe::1]/jwks", "https://[64:ff9b::a00:1]/jwks", "https://[2001::1]/jwks",
               "https://keys.inward.example.org/jwks"]


async def test_urls_the_exchange_must_not_fetch_are_refused_at_registration(registry, org, dns, httpx_mock):
    from exchange.auth.clients import ClientError

    dns.set("keys.inward.example.org", ["100.100.100.200"])
    for url in INWARD_URLS:
        with pytest.raises(ClientError, match="JWKS URL"):
            await registry.add(org, "partner", "system/*.rs", jwks_url=url)
    assert [c.client_id for c in await registry.list()] == []
    assert httpx_mock.get_requests() == []


async def test_an_admin_registering_an_inward_jwks_url_gets_422(make_client, org, dns, httpx_mock):
    admin = await make_client(org, role="admin", scopes="system/Organization.cruds")
    for url in ("https://127.1/jwks", "https://keys.inward.example.org/jwks"):
        dns.set("keys.inward.example.org", ["10.0.0.5"])
        r = await admin.post("http://127.0.0.1:8080/auth/clients", json={
            "organization": f"Organization/{org}", "role": "partner", "scope": "system/*.rs", "jwks_url": url})
        assert r.status_code == 422, r.text
        assert "jwks_url" in r.text and url not in r.text
        r = await admin.patch(f"http://127.0.0.1:8080/auth/clients/{admin.client_id}", json={"jwks_url": url})
        assert r.status_code == 422, r.text
    assert httpx_mock.get_requests() == []


async def test_a_jwks_name_that_rebinds_inward_after_registration_is_never_fetched(root, registry, org, dns,
                                                                                    httpx_mock):
    url = "https://keys.partner.example.org/jwks.json"
    dns.set("keys.partner.example.org", ["93.184.215.14"], ["169.254.169.254"])
    httpx_mock.add_response(url=url, json=ec_key().jwks, is_optional=True)
    client_id = (await registry.add(org, "partner", "system/*.rs", jwks_url=url)).client_id
    r = await _token(root, client_id, ec_key())
    assert r.status_code == 401, r.text
    assert "does not call" in r.json()["error_description"] and "169.254" not in r.text
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize("response,reason", [
    (dict(status_code=302, headers={"Location": "http://169.254.169.254/"}), "answered 302"),
    (dict(status_code=404), "answered 404"),
    (dict(content=b"{" + b" " * 70000 + b"}"), "larger than"),
    (dict(content=b"<html>not json</html>"), "did not return JSON"),
    (dict(json={"keys": []}), "not acceptable"),
])
async def test_bad_answers_are_refused(root, registry, org, httpx_mock, response, reason):
    key = ec_key()
    httpx_mock.add_response(url=URL, **response)
    client_id = (await registry.add(org, "partner", "system/*.rs", jwks_url=URL)).client_id
    r = await _token(root, client_id, key)
    assert r.status_code == 401
    assert reason in r.json()["error_description"]
    assert len(httpx_mock.get_requests()) == 1  # no redirect followed


async def test_private_keys_in_a_fetched_set_are_refused(root, registry, org, httpx_mock):
    from cryptography.hazmat.primitives.asymmetric import ec
    import jwt as pyjwt
    import json

    private = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1())))
    private["kid"] = "leaked"
    httpx_mock.add_response(url=URL, json={"keys": [private]})
    client_id = (await registry.add(org, "partner", "system/*.rs", jwks_url=URL)).client_id
    r = await _token(root, client_id, ec_key())
    assert r.status_code == 401 and "private" in r.json()["error_description"]


async def test_a_time_out_is_refused(root, registry, org, httpx_mock):
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=URL)
    client_id = (await registry.add(org, "partner", "system/*.rs", jwks_url=URL)).client_id
    r = await _token(root, client_id, ec_key())
    assert r.status_code == 401 and "in time" in r.json()["error_description"]


async def test_the_fetch_has_a_time_out_and_follows_no_redirect(exchange, httpx_mock):
    from exchange.auth.service import auth_service

    key = ec_key()
    httpx_mock.add_response(url=URL, json=key.jwks)
    await auth_service(exchange).fetcher.get(URL)
    request = httpx_mock.get_requests()[0]
    timeout = request.extensions["timeout"]
    assert timeout["connect"] == timeout["read"] == exchange.settings.jwks_fetch_timeout_seconds


class TestLoopbackInDevelopment:
    @pytest.fixture
    def settings(self, database_url, tmp_path):
        return Settings(database_url=database_url, state_dir=tmp_path / "state", host="127.0.0.1", port=8080,
                        jwks_allow_loopback=True)

    async def test_loopback_http_is_allowed_when_configured(self, root, registry, org, httpx_mock):
        key = ec_key()
        url = "http://127.0.0.1:9000/jwks.json"
        httpx_mock.add_response(url=url, json=key.jwks)
        client_id = (await registry.add(org, "partner", "system/*.rs", jwks_url=url)).client_id
        assert (await _token(root, client_id, key)).status_code == 200

    async def test_private_addresses_stay_refused(self, registry, org, httpx_mock):
        from exchange.auth.clients import ClientError

        for url in ("http://10.0.0.1/j", "https://10.0.0.1/j", "http://127.1/j"):
            with pytest.raises(ClientError, match="JWKS URL"):
                await registry.add(org, "partner", "system/*.rs", jwks_url=url)
