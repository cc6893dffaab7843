"""RFC 7662 introspection and RFC 7009 revocation, authenticated with a client assertion like the token endpoint."""
from __future__ import annotations

from tests.auth.keys import ASSERTION_TYPE
from tests.conftest import make_assertion

TOKEN_URL = "http://127.0.0.1:8080/auth/token"
INTROSPECT_URL = "http://127.0.0.1:8080/auth/introspect"
REVOKE_URL = "http://127.0.0.1:8080/auth/revoke"


def _auth(http, aud: str = TOKEN_URL) -> dict:
    return {"client_assertion_type": ASSERTION_TYPE,
            "client_assertion": make_assertion(http.client_id, http.key, aud)}


async def test_a_client_introspects_its_own_token(root, make_org, make_client):
    partner = await make_client(await make_org(), scopes="system/Task.rs")
    for aud in (TOKEN_URL, INTROSPECT_URL):
        r = await root.post("/auth/introspect", data={"token": partner.access_token, **_auth(partner, aud)})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["active"] is True
        assert body["client_id"] == partner.client_id
        assert body["scope"] == "system/Task.rs"
        assert body["exp"] - body["iat"] == 300


async def test_introspection_of_foreign_or_bogus_tokens_says_inactive(root, make_org, make_client):
    a = await make_client(await make_org("A"))
    b = await make_client(await make_org("B"))
    for token in (b.access_token, "garbage", a.access_token[:-4] + "AAAA"):
        r = await root.post("/auth/introspect", data={"token": token, **_auth(a)})
        assert r.status_code == 200
        assert r.json() == {"active": False}


async def test_introspection_needs_client_authentication(root, make_org, make_client):
    partner = await make_client(await make_org())
    r = await root.post("/auth/introspect", data={"token": partner.access_token})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    wrong_aud = _auth(partner, "https://elsewhere.example/introspect")
    r = await root.post("/auth/introspect", data={"token": partner.access_token, **wrong_aud})
    assert r.status_code == 401


async def test_revoked_token_stops_working_at_once(root, make_org, make_client):
    partner = await make_client(await make_org())
    assert (await partner.get("/Organization")).status_code == 200
    r = await root.post("/auth/revoke", data={"token": partner.access_token, **_auth(partner, REVOKE_URL)})
    assert r.status_code == 200, r.text
    refused = await partner.get("/Organization")
    assert refused.status_code == 401
    assert "revoked" in refused.headers["www-authenticate"]
    assert refused.json()["resourceType"] == "OperationOutcome"
    r = await root.post("/auth/introspect", data={"token": partner.access_token, **_auth(partner)})
    assert r.json() == {"active": False}
    again = await root.post("/auth/revoke", data={"token": partner.access_token, **_auth(partner)})
    assert again.status_code == 200


async def test_a_client_cannot_revoke_another_clients_token(root, make_org, make_client):
    a = await make_client(await make_org("A"))
    b = await make_client(await make_org("B"))
    r = await root.post("/auth/revoke", data={"token": b.access_token, **_auth(a)})
    assert r.status_code == 400
    assert (await b.get("/Organization")).status_code == 200


async def test_revoking_an_unknown_token_is_not_an_error(root, make_org, make_client):
    a = await make_client(await make_org("A"))
    r = await root.post("/auth/revoke", data={"token": "not-a-token", **_auth(a)})
    assert r.status_code == 200


async def test_revocation_needs_client_authentication(root, make_org, make_client):
    a = await make_client(await make_org("A"))
    r = await root.post("/auth/revoke", data={"token": a.access_token})
    assert r.status_code == 401
    assert (await a.get("/Organization")).status_code == 200
