"""No single role both manages partner credentials and reads referral content (issue 11 class 8).

An admin client manages clients over HTTP, but a client it registers or re-keys there stays unusable until a second
admin client or the operator on the server's CLI confirms it: an admin that registers a partner with a key it holds
gets no working token for it on its own. Confirmation is audited.
"""
from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from tests.auth.keys import assertion, ec_key, token_form
from tests.fhir_checks import assert_outcome

CLIENTS = "http://127.0.0.1:8080/auth/clients"
ADMIN_SCOPES = "system/Organization.cruds"


@pytest.fixture
async def coordination(make_org):
    return await make_org("Coordination body", "ngo")


@pytest.fixture
async def admin(make_client, coordination):
    return await make_client(coordination, role="admin", scopes=ADMIN_SCOPES)


@pytest.fixture
async def second_admin(make_client, coordination):
    return await make_client(coordination, role="admin", scopes=ADMIN_SCOPES)


async def _token(root, client_id: str, key) -> int:  # noqa: ANN001
    return (await root.post("/auth/token", data=token_form(assertion(client_id, key)))).status_code


async def _register(admin, organization: str, key, role: str = "partner", scope: str = "system/*.cruds") -> dict:
    r = await admin.post(CLIENTS, json={"organization": f"Organization/{organization}", "role": role,
                                        "scope": scope, "jwks": key.jwks})
    assert r.status_code == 201, r.text
    return r.json()


async def test_an_admin_gets_no_token_for_a_partner_it_registers_with_its_own_key(admin, second_admin, make_org,
                                                                                   make_client, root):
    shelter = await make_org("Safe House", "shelter")
    own_key = ec_key()
    client = await _register(admin, shelter, own_key)
    assert client["pending_confirmation"] is True and client["requested_by"] == admin.client_id
    assert await _token(root, client["client_id"], own_key) == 401
    # enabling it is no way round the confirmation
    r = await admin.patch(f"{CLIENTS}/{client['client_id']}", json={"active": True})
    assert r.status_code == 200 and r.json()["pending_confirmation"] is True
    assert await _token(root, client["client_id"], own_key) == 401
    # nor is confirming it itself
    assert_outcome(await admin.post(f"{CLIENTS}/{client['client_id']}/confirm"), 403)
    assert await _token(root, client["client_id"], own_key) == 401
    # a second admin confirms: from then on the partner's key works
    r = await second_admin.post(f"{CLIENTS}/{client['client_id']}/confirm")
    assert r.status_code == 200, r.text
    assert r.json()["pending_confirmation"] is False and r.json()["requested_by"] is None
    assert await _token(root, client["client_id"], own_key) == 200
    # a confirmed client has nothing left to confirm
    assert_outcome(await second_admin.post(f"{CLIENTS}/{client['client_id']}/confirm"), 409)


async def test_an_admin_cannot_make_itself_a_second_admin(admin, coordination, root):
    key = ec_key()
    accomplice = await _register(admin, coordination, key, role="admin", scope=ADMIN_SCOPES)
    assert accomplice["pending_confirmation"] is True
    assert await _token(root, accomplice["client_id"], key) == 401


async def test_rekeying_a_partner_over_http_suspends_it_until_confirmed_on_the_cli(admin, make_org, make_client,
                                                                                   root, settings):
    from exchange.main import cli

    shelter = await make_org("Safe House", "shelter")
    partner = await make_client(shelter)
    assert (await partner.get("/Organization")).status_code == 200
    own_key = ec_key()
    r = await admin.patch(f"{CLIENTS}/{partner.client_id}", json={"jwks": own_key.jwks})
    assert r.status_code == 200 and r.json()["pending_confirmation"] is True
    assert (await partner.get("/Organization")).status_code == 401  # the live token stops at once
    assert await _token(root, partner.client_id, own_key) == 401
    result = await asyncio.to_thread(CliRunner().invoke, cli, [
        "clients", "confirm", partner.client_id, "--database-url", settings.database_url])
    assert result.exit_code == 0, result.output
    assert await _token(root, partner.client_id, own_key) == 200


async def test_scope_and_state_changes_over_http_need_no_confirmation(admin, make_org, make_client):
    partner = await make_client(await make_org("Hotline", "hotline"))
    r = await admin.patch(f"{CLIENTS}/{partner.client_id}", json={"scope": "system/*.rs"})
    assert r.status_code == 200 and r.json()["pending_confirmation"] is False
    assert (await partner.get("/Organization")).status_code == 200


async def test_confirmation_and_its_refusal_are_audited(admin, second_admin, make_org, make_client, coordination):
    shelter = await make_org("Safe House", "shelter")
    client = await _register(admin, shelter, ec_key())
    assert (await admin.post(f"{CLIENTS}/{client['client_id']}/confirm")).status_code == 403
    assert (await second_admin.post(f"{CLIENTS}/{client['client_id']}/confirm")).status_code == 200
    auditor = await make_client(coordination, role="auditor", scopes="system/AuditEvent.rs")
    r = await auditor.get("/AuditEvent", params={"subtype": "client-confirm", "_sort": "date"})
    assert r.status_code == 200, r.text
    events = [e["resource"] for e in r.json().get("entry", [])]
    sources = [[a["who"]["identifier"]["value"] for a in e["agent"] if "identifier" in a.get("who", {})]
               for e in events]
    assert sources == [[admin.client_id], [second_admin.client_id]]
    assert [e["outcome"] for e in events] == ["4", "0"]
    assert all(e["entity"][0]["what"]["reference"] == f"Organization/{shelter}" for e in events[1:])
