"""SMART Backend Services as the ONC/Inferno kit checks it (issue 13 item 3): every 401 carries WWW-Authenticate
(RFC 6749 §5.2, RFC 7235, RFC 6750 §3), a wrong `client_assertion_type` is a 400 invalid_request, a malformed
assertion a 400 invalid_client, and discovery lists only what the exchange serves."""
from __future__ import annotations

import base64

import pytest

from tests.auth.keys import ASSERTION_TYPE, assertion, ec_key, token_form


@pytest.fixture
async def org(make_org):
    return await make_org("Amal Hotline", kind="hotline")


def _challenged(r, error: str | None = None) -> str:
    assert r.status_code == 401, r.text
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="exchange"'), challenge
    if error:
        assert f'error="{error}"' in challenge, challenge
    return challenge


async def test_every_401_carries_a_bearer_challenge(root, registry, org, app):
    import httpx

    key = ec_key()
    client_id = (await registry.add(org, "partner", "system/*.rs", jwks=key.jwks)).client_id
    for path in ("/auth/token", "/auth/introspect", "/auth/revoke"):
        form = token_form(assertion("no-such-client", key), token="x")
        _challenged(await root.post(path, data=form), "invalid_client")
        bare = await root.post(path, data={"grant_type": "client_credentials", "token": "x"})
        _challenged(bare, "invalid_client")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as anonymous:
        for path in ("/fhir/Patient", "/fhir/AuditEvent", "/auth/clients", "/fhir/Subscription/$status"):
            _challenged(await anonymous.get(path))
            _challenged(await anonymous.get(path, headers={"Authorization": "Bearer not-a-token"}), "invalid_token")
            _challenged(await anonymous.get(path, headers={"Authorization": "Basic eDp5"}), "invalid_request")
    assert (await root.post("/auth/token", data=token_form(assertion(client_id, key)))).status_code == 200


async def test_a_wrong_or_missing_client_assertion_type_is_invalid_request(root, registry, org):
    key = ec_key()
    client_id = (await registry.add(org, "partner", "system/*.rs", jwks=key.jwks)).client_id
    for assertion_type in ("urn:example:other", "", None):  # None: left out
        form = token_form(assertion(client_id, key), client_assertion_type=assertion_type)
        r = await root.post("/auth/token", data=form)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_request" and "client_assertion_type" in r.json()["error_description"]


async def test_a_missing_assertion_with_the_right_type_is_invalid_request(root):
    r = await root.post("/auth/token", data={"grant_type": "client_credentials", "scope": "system/*.rs",
                                              "client_assertion_type": ASSERTION_TYPE})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


MALFORMED = ["not.a.jwt", "garbage", "a.b", _b64(b"{") + "." + _b64(b"{}") + ".c2ln",
             _b64(b'{"alg":"ES384","kid":"k"}') + "." + _b64(b"not json") + ".c2ln",
             _b64(b'{"alg":"ES384","kid":"k"}') + "." + _b64(b"[1,2]") + ".c2ln"]


async def test_a_malformed_assertion_is_a_400_invalid_client(root):
    for malformed in MALFORMED:
        r = await root.post("/auth/token", data=token_form(malformed))
        assert r.status_code == 400, (malformed, r.text)
        assert r.json()["error"] == "invalid_client"
        assert r.headers["cache-control"] == "no-store"


async def test_discovery_lists_only_what_the_exchange_serves(root):
    doc = (await root.get("/fhir/.well-known/smart-configuration")).json()
    assert "authorization_endpoint" not in doc
    assert "response_types_supported" not in doc  # no authorization endpoint, so no response types
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert doc["code_challenge_methods_supported"] == ["S256"]  # SMART 2.x: REQUIRED, S256 included, never plain
    assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
