"""What an unauthenticated caller learns from the token endpoint (issue 11 class 10): a `client_id` that differs
from the assertion's `sub` is refused, and an unknown client, a disabled one, one waiting for confirmation, an
unknown key and a wrong signature all get the same answer. Narrowing a client's scopes takes effect on its live
tokens at once."""
from __future__ import annotations

import pytest

from tests.auth.keys import assertion, ec_key, token_form

CLIENTS = "http://127.0.0.1:8080/auth/clients"


@pytest.fixture
async def org(make_org):
    return await make_org("Amal Hotline", kind="hotline")


async def test_a_client_id_that_differs_from_the_assertion_sub_is_refused(root, registry, org):
    key, other = ec_key(), ec_key()
    client_id = (await registry.add(org, "partner", "system/*.rs", jwks=key.jwks)).client_id
    other_id = (await registry.add(org, "partner", "system/*.rs", jwks=other.jwks)).client_id
    r = await root.post("/auth/token", data=token_form(assertion(client_id, key), client_id=other_id))
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client" and "client_id" in r.json()["error_description"]
    same = await root.post("/auth/token", data=token_form(assertion(client_id, key), client_id=client_id))
    assert same.status_code == 200, same.text


async def test_unauthenticated_refusals_do_not_tell_unknown_disabled_pending_or_missing_key_apart(
        root, registry, org, make_client):
    key = ec_key()
    active = (await registry.add(org, "partner", "system/*.rs", jwks=key.jwks)).client_id
    disabled = (await registry.add(org, "partner", "system/*.rs", jwks=key.jwks)).client_id
    await registry.set_active(disabled, False)
    admin = await make_client(org, role="admin", scopes="system/Organization.cruds")
    r = await admin.post(CLIENTS, json={"organization": f"Organization/{org}", "role": "partner",
                                        "scope": "system/*.rs", "jwks": key.jwks})
    pending = r.json()["client_id"]
    stranger, impostor = ec_key(), ec_key(kid=key.kid)
    attempts = {
        "unknown client": assertion("no-such-client", key),
        "disabled client": assertion(disabled, key),
        "pending client": assertion(pending, key),
        "unknown kid": assertion(active, stranger),
        "wrong signature": assertion(active, impostor),
    }
    answers = {}
    for name, signed in attempts.items():
        r = await root.post("/auth/token", data=token_form(signed))
        answers[name] = (r.status_code, r.json(), r.headers.get("www-authenticate"))
    first = answers["unknown client"]
    assert first[0] == 401 and first[1]["error"] == "invalid_client"
    assert all(answer == first for answer in answers.values()), answers
    assert (await root.post("/auth/token", data=token_form(assertion(active, key)))).status_code == 200


async def test_narrowing_a_clients_scopes_narrows_its_live_tokens_at_once(make_org, make_client):
    org = await make_org("Safe House", "shelter")
    partner = await make_client(org, scopes="system/Organization.rs system/Patient.rs")
    assert (await partner.get("/Organization")).status_code == 200
    assert (await partner.get("/Patient")).status_code == 200
    admin = await make_client(org, role="admin", scopes="system/Organization.cruds")
    r = await admin.patch(f"{CLIENTS}/{partner.client_id}", json={"scope": "system/Organization.rs"})
    assert r.status_code == 200, r.text
    refused = await partner.get("/Patient")
    assert refused.status_code == 403, refused.text
    assert (await partner.get("/Organization")).status_code == 200
    # widening again never gives a live token more than it was issued with
    await admin.patch(f"{CLIENTS}/{partner.client_id}", json={"scope": "system/*.cruds"})
    assert (await partner.get("/Patient")).status_code == 200
    assert (await partner.post("/Patient", json={"resourceType": "Patient"})).status_code == 403


async def test_introspection_reports_the_narrowed_scope(root, registry, org):
    from tests.auth.keys import TOKEN_URL

    key = ec_key()
    client_id = (await registry.add(org, "partner", "system/Task.rs system/Patient.rs", jwks=key.jwks)).client_id
    token = (await root.post("/auth/token", data=token_form(assertion(client_id, key),
                                                             scope="system/Task.rs system/Patient.rs"))).json()
    await registry.set_scopes(client_id, "system/Task.rs")
    r = await root.post("/auth/introspect", data={
        "token": token["access_token"],
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(client_id, key, aud=TOKEN_URL.replace("token", "introspect"))})
    assert r.status_code == 200, r.text
    assert r.json()["active"] is True and r.json()["scope"] == "system/Task.rs"
