"""Token requests with values no column can hold (NUL bytes, over-long ids) are refused as OAuth errors, never
a 5xx: on PostgreSQL such values used to reach the database and fail there."""
from __future__ import annotations

import pytest

from tests.auth.keys import assertion, ec_key, token_form

LONG = "c" * 300


@pytest.fixture
async def client_id(make_org, registry):
    org = await make_org("Amal Hotline", kind="hotline")
    return org


@pytest.mark.parametrize("claims,headers", [
    ({"iss": "a\x00b", "sub": "a\x00b"}, None), ({"iss": LONG, "sub": LONG}, None),
    ({"jti": "j\x00"}, None), ({"jti": LONG}, None),
])
async def test_assertion_claims_no_column_can_hold_are_401(root, registry, client_id, claims, headers):
    key = ec_key()
    cid = (await registry.add(client_id, "partner", "system/*.rs", jwks=key.jwks)).client_id
    signed = assertion(cid, key, headers=headers, **claims)
    r = await root.post("/auth/token", data=token_form(signed))
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client", r.text


async def test_a_scope_no_column_can_hold_is_400(root, registry, client_id):
    key = ec_key()
    cid = (await registry.add(client_id, "partner", "system/*.rs", jwks=key.jwks)).client_id
    r = await root.post("/auth/token", data=token_form(assertion(cid, key), scope="system/\x00"))
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_scope"


@pytest.mark.parametrize("token", ["a\x00b", "x" * 5000])
async def test_bearer_tokens_no_column_can_hold_are_401(root, token):
    r = await root.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    for endpoint in ("/auth/introspect", "/auth/revoke"):
        r = await root.post(endpoint, data={"token": token})
        assert r.status_code == 401, r.text  # both endpoints need the caller's own client assertion
