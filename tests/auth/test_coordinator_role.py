"""The coordinator role: a client of the deployment's coordinating organisation reads the directory and no
referral resource at all (her Patient, Consent, documents; the Task and ServiceRequest too); it sees escalated
referrals only through the coordination view (tests/referral/test_escalation.py)."""
from __future__ import annotations

import pytest

from exchange.auth.access import require_role, role_allows
from exchange.auth.clients import ClientError
from exchange.auth.roles import COORDINATOR, ROLES, is_coordinator
from exchange.auth.service import auth_service
from exchange.context import RequestContext
from exchange.errors import Forbidden
from exchange.settings import Settings
from tests.fhir_checks import assert_outcome, organization, patient
from tests.referral import world


async def test_a_coordinator_reads_the_directory_and_no_referral_resource(make_org, make_client, client):
    coordination = await make_org("GBV sub-cluster", "ngo")
    coordinator = await make_client(coordination, role=COORDINATOR, scopes="system/*.rs")
    hotline, shelter = await make_org("Hotline", "hotline"), await make_org("Shelter", "shelter")
    started = await world.referral_via_api(await make_client(hotline), client, hotline, shelter)
    assert (await coordinator.get(f"/Organization/{shelter}")).status_code == 200
    assert (await coordinator.get("/HealthcareService")).status_code == 200
    for rtype in ("Patient", "Consent", "ServiceRequest", "Task"):
        assert_outcome(await coordinator.get(f"/{rtype}/{started[rtype]}"), 403, text="role coordinator")
        assert_outcome(await coordinator.get(f"/{rtype}"), 403, text="role coordinator")
    for rtype in ("DocumentReference", "Procedure"):
        assert_outcome(await coordinator.get(f"/{rtype}"), 403, text="role coordinator")
    assert_outcome(await coordinator.get("/AuditEvent"), 403)
    assert_outcome(await coordinator.post("/Organization", json=organization("Mine")), 403)
    assert_outcome(await coordinator.post("/Patient", json=patient()), 403)


def test_the_roles_are_defined_once_and_the_registry_takes_coordinators():
    from exchange.auth import access, clients

    assert access.ROLES is ROLES and clients.ROLES is ROLES and COORDINATOR in ROLES
    assert role_allows(COORDINATOR, "Location", "s") and not role_allows(COORDINATOR, "HealthcareService", "u")
    assert not any(role_allows(COORDINATOR, t, op) for t in ("Task", "Patient", "Consent", "AuditEvent") for op in "crs")
    ctx = RequestContext("c1", "coord", COORDINATOR, frozenset({"system/*.rs"}))
    require_role(ctx, COORDINATOR, "auditor")
    with pytest.raises(Forbidden):
        require_role(RequestContext("c2", "coord", "partner"), COORDINATOR)


def test_only_a_coordinator_of_the_configured_organisation_is_the_deployments_coordinator(tmp_path):
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", coordinating_organization="coord")
    assert is_coordinator(RequestContext("c1", "coord", COORDINATOR), settings)
    assert not is_coordinator(RequestContext("c1", "other", COORDINATOR), settings)
    assert not is_coordinator(RequestContext("c1", "coord", "auditor"), settings)
    assert not is_coordinator(RequestContext("c1", "coord", COORDINATOR), settings.model_copy(
        update={"coordinating_organization": None}))


async def test_the_registry_refuses_an_unknown_role(app, exchange, make_org):
    org = await make_org("GBV sub-cluster", "ngo")
    with pytest.raises(ClientError, match="coordinator"):
        await auth_service(exchange).registry.add(org, "supervisor", "system/*.rs", jwks=None,
                                                  jwks_url="https://keys.example.org/jwks.json")
