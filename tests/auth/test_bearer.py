"""Every FHIR endpoint except metadata and discovery needs a valid bearer token; anything else is 401 with
WWW-Authenticate: Bearer and an OperationOutcome."""
from __future__ import annotations

import time
import uuid

import httpx
import jwt as pyjwt
import pytest

from tests.fhir_checks import assert_outcome

FHIR = "http://127.0.0.1:8080/fhir"


@pytest.fixture
async def anonymous(app):
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=FHIR,
                                 headers={"Content-Type": "application/fhir+json"}) as http:
        yield http


def _assert_401(r, error: str | None = "invalid_token") -> None:
    assert_outcome(r, 401)
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="exchange"')
    if error:
        assert f'error="{error}"' in challenge


ROUTES = [("GET", "/Task"), ("POST", "/Task/_search"), ("POST", "/Task"), ("GET", "/Task/x"),
          ("PUT", "/Task/x"), ("DELETE", "/Task/x"), ("GET", "/Task/x/_history"), ("GET", "/Task/x/_history/1"),
          ("POST", ""), ("GET", "/Organization")]


@pytest.mark.parametrize("method,path", ROUTES)
async def test_no_token_no_access(anonymous, method, path):
    r = await anonymous.request(method, path, content=b"{}")
    _assert_401(r, error=None)


async def test_metadata_and_discovery_need_no_token(anonymous):
    assert (await anonymous.get("/metadata")).status_code == 200
    assert (await anonymous.get("/.well-known/smart-configuration")).status_code == 200


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer not-a-jwt", "Bearer a.b.c", "Basic dXNlcjpwdw==",
                                    "bearer " + "x" * 9000])
async def test_malformed_authorization_is_401(anonymous, header):
    r = await anonymous.get("/Organization", headers={"Authorization": header})
    _assert_401(r, error=None)


async def _exchange_signed(exchange, **changes) -> str:
    """A token shaped like the exchange's, signed with the exchange's own key by the test (PyJWT)."""
    signing = await exchange.keys.current()
    pem = signing.key.as_pem(private=True)
    now = int(time.time())
    claims = {"iss": "http://127.0.0.1:8080", "aud": FHIR, "sub": "c", "client_id": "c", "scope": "system/*.rs",
              "iat": now - 600, "exp": now - 300, "jti": uuid.uuid4().hex}
    headers = {"kid": signing.kid, "typ": changes.pop("typ", "at+jwt")}
    claims.update(changes)
    return pyjwt.encode(claims, pem, algorithm="ES256", headers=headers)


async def test_expired_token_is_401(anonymous, exchange, make_org, make_client):
    partner = await make_client(await make_org())
    token = await _exchange_signed(exchange, client_id=partner.client_id, sub=partner.client_id)
    r = await anonymous.get("/Organization", headers={"Authorization": f"Bearer {token}"})
    _assert_401(r)
    assert "expired" in r.headers["www-authenticate"]


@pytest.mark.parametrize("change", [{"aud": "https://other.example/fhir"}, {"iss": "https://other.example"},
                                    {"typ": "JWT"}])
async def test_token_for_another_audience_issuer_or_type_is_401(anonymous, exchange, make_org, make_client, change):
    partner = await make_client(await make_org())
    now = int(time.time())
    token = await _exchange_signed(exchange, client_id=partner.client_id, sub=partner.client_id, exp=now + 60,
                                   **change)
    _assert_401(await anonymous.get("/Organization", headers={"Authorization": f"Bearer {token}"}))


async def test_token_signed_by_another_key_is_401(anonymous, exchange, make_org, make_client):
    from cryptography.hazmat.primitives.asymmetric import ec

    partner = await make_client(await make_org())
    claims = pyjwt.decode(partner.access_token, options={"verify_signature": False})
    header = pyjwt.get_unverified_header(partner.access_token)
    forged = pyjwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers=header)
    _assert_401(await anonymous.get("/Organization", headers={"Authorization": f"Bearer {forged}"}))


async def test_disabled_client_tokens_stop_working_at_once(make_org, make_client, registry):
    partner = await make_client(await make_org())
    assert (await partner.get("/Organization")).status_code == 200
    await registry.set_active(partner.client_id, False)
    r = await partner.get("/Organization")
    _assert_401(r)
    assert "disabled" in r.json()["issue"][0]["diagnostics"]
    await registry.set_active(partner.client_id, True)
    assert (await partner.get("/Organization")).status_code == 200


async def test_the_system_context_is_not_reachable_over_http(anonymous):
    """No header, loopback address or forged claim turns a request into the exchange's own context."""
    for headers in ({}, {"X-Forwarded-For": "127.0.0.1"}, {"X-Test-System-Context": "1"}):
        _assert_401(await anonymous.get("/Task", headers=headers), error=None)


async def test_a_token_signed_after_another_process_rotated_the_key_is_accepted(settings, make_org, make_client,
                                                                                 root):
    """Worker 2 rotates the exchange's key and issues a token with it; worker 1 picks the new key up."""
    from exchange.main import create_app
    from exchange.main import build

    partner = await make_client(await make_org())
    assert (await partner.get("/Organization")).status_code == 200
    other = build(settings)
    app2 = create_app(settings, other)
    async with app2.router.lifespan_context(app2):
        await other.keys.rotate()
        from tests.auth.keys import ASSERTION_TYPE
        from tests.conftest import make_assertion

        transport = httpx.ASGITransport(app=app2, client=("127.0.0.1", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            r = await http.post("/auth/token", data={
                "grant_type": "client_credentials", "scope": "system/*.rs", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": make_assertion(partner.client_id, partner.key,
                                                   "http://127.0.0.1:8080/auth/token")})
        assert r.status_code == 200, r.text
        new_token = r.json()["access_token"]
    assert pyjwt.get_unverified_header(new_token)["kid"] != pyjwt.get_unverified_header(partner.access_token)["kid"]
    introspected = await root.post("/auth/introspect", data={
        "token": new_token, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": make_assertion(partner.client_id, partner.key, "http://127.0.0.1:8080/auth/token")})
    assert introspected.json()["active"] is True
    r = await partner.get("/Organization", headers={"Authorization": f"Bearer {new_token}"})
    assert r.status_code == 200, r.text
    assert (await partner.get("/Organization")).status_code == 200  # the old key is still published
