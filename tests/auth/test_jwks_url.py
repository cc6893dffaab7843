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
    assert r.status_code == 401 and "No key with kid" in r.json()["error_description"]


@pytest.mark.parametrize("url,reason", [
    ("http://93.184.215.14/jwks.json", "https"),
    ("https://10.1.2.3/jwks.json", "does not call"),
    ("https://192.168.0.10/jwks.json", "does not call"),
    ("https://169.254.169.254/latest/meta-data/jwks", "does not call"),
    ("https://[fd00:ec2::254]/jwks", "does not call"),
    ("https://127.0.0.1/jwks.json", "does not call"),
    ("https://[::ffff:10.0.0.1]/jwks.json", "does not call"),
    ("https://0.0.0.0/jwks.json", "does not call"),
])
async def test_urls_the_exchange_must_not_fetch_are_refused_without_a_request(root, registry, org, httpx_mock, url,
                                                                              reason):
    key = ec_key()
    client_id = (await registry.add(org, "partner", "system/*.rs", jwks_url=url)).client_id
    r = await _token(root, client_id, key)
    assert r.status_code == 401, r.text
    assert reason in r.json()["error_description"]
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

    async def test_private_addresses_stay_refused(self, root, registry, org, httpx_mock):
        client_id = (await registry.add(org, "partner", "system/*.rs", jwks_url="http://10.0.0.1/j")).client_id
        assert (await _token(root, client_id, ec_key())).status_code == 401
