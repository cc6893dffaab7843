"""Client management over HTTP: admin clients only; each change commits with its audit record."""
from __future__ import annotations

import pytest

from tests.auth.keys import assertion, ec_key, token_form
from tests.fhir_checks import assert_outcome

ADMIN_BASE = "http://127.0.0.1:8080/auth/clients"


@pytest.fixture
async def admin(make_org, make_client):
    return await make_client(await make_org("Coordination", "ngo"), role="admin",
                             scopes="system/Organization.cruds")


async def test_admin_registers_a_partner_that_gets_a_token_once_a_second_admin_confirms(admin, make_org, make_client,
                                                                                         root):
    org = await make_org("New shelter", "shelter")
    key = ec_key()
    r = await admin.post(ADMIN_BASE, json={"organization": f"Organization/{org}", "role": "partner",
                                           "scope": "system/*.rs", "jwks": key.jwks, "label": "Shelter EMR"})
    assert r.status_code == 201, r.text
    client = r.json()
    assert client["organization"] == f"Organization/{org}" and client["kids"] == [key.kid]
    assert (await root.post("/auth/token", data=token_form(assertion(client["client_id"], key)))).status_code == 401
    second = await make_client(admin.organization_id, role="admin", scopes="system/Organization.cruds")
    assert (await second.post(f"{ADMIN_BASE}/{client['client_id']}/confirm")).status_code == 200
    assert (await root.post("/auth/token", data=token_form(assertion(client["client_id"], key)))).status_code == 200
    listed = (await admin.get(ADMIN_BASE)).json()
    assert client["client_id"] in {c["client_id"] for c in listed}
    assert (await admin.get(f"{ADMIN_BASE}/{client['client_id']}")).json()["label"] == "Shelter EMR"


async def test_admin_disables_a_client_and_its_token_stops_at_once(admin, make_org, make_client):
    partner = await make_client(await make_org("Hotline", "hotline"))
    r = await admin.patch(f"{ADMIN_BASE}/{partner.client_id}", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    assert (await partner.get("/Organization")).status_code == 401
    r = await admin.patch(f"{ADMIN_BASE}/{partner.client_id}", json={"active": True, "scope": "system/Task.rs"})
    assert r.json()["active"] is True and r.json()["scope"] == "system/Task.rs"


async def test_refusals(admin, make_org, make_client):
    org = await make_org("Hotline", "hotline")
    partner = await make_client(org)
    auditor = await make_client(org, role="auditor", scopes="system/AuditEvent.rs")
    for who in (partner, auditor):
        assert_outcome(await who.get(ADMIN_BASE), 403)
        assert_outcome(await who.post(ADMIN_BASE, json={"organization": org, "role": "admin", "scope": "system/*.cruds",
                                                        "jwks": ec_key().jwks}), 403)
        assert_outcome(await who.patch(f"{ADMIN_BASE}/{partner.client_id}", json={"active": False}), 403)
    assert (await partner.get("/Organization")).status_code == 200
    assert_outcome(await admin.patch(f"{ADMIN_BASE}/nobody", json={"active": False}), 404)
    assert_outcome(await admin.get(f"{ADMIN_BASE}/nobody"), 404)
    assert_outcome(await admin.post(ADMIN_BASE, json={"organization": "no-such-org", "role": "partner",
                                                      "scope": "system/*.rs", "jwks": ec_key().jwks}), 422)
    assert_outcome(await admin.post(ADMIN_BASE, json={"organization": org, "role": "system", "scope": "system/*.rs",
                                                      "jwks": ec_key().jwks}), 422)
    assert_outcome(await admin.patch(f"{ADMIN_BASE}/{partner.client_id}", json={"owner": "me"}), 400)
    assert_outcome(await admin.patch(f"{ADMIN_BASE}/{partner.client_id}", json={"active": "no"}), 400)


async def test_changes_and_refusals_reach_the_audit_hooks(admin, make_org, make_client, exchange):
    seen = []

    class Recorder:
        async def before_commit(self, unit):  # noqa: ANN001, ANN202
            seen.extend(("ok", unit.ctx.client_id, e.interaction, e.resource_type, e.resource_id) for e in unit.events)

        async def on_failure(self, conn, failure):  # noqa: ANN001, ANN202
            seen.append(("refused", failure.ctx.client_id, failure.interaction, failure.error.status, None))

    org = await make_org("Hotline", "hotline")
    partner = await make_client(org)
    exchange.hooks.append(Recorder())
    await admin.patch(f"{ADMIN_BASE}/{partner.client_id}", json={"scope": "system/*.rs"})
    await partner.patch(f"{ADMIN_BASE}/{partner.client_id}", json={"scope": "system/*.cruds"})
    assert seen == [("ok", admin.client_id, "client-update", "Organization", org),
                    ("refused", partner.client_id, "client-update", 403, None)]
