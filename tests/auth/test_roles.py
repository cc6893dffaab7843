"""Roles and scopes: what a partner, an auditor and an admin may do, and the partner write rules."""
from __future__ import annotations

import pytest

from exchange.auth.access import check_permission, require_role, role_allows
from exchange.context import RequestContext, system_context
from exchange.errors import Forbidden
from tests.fhir_checks import assert_outcome, organization, patient, task
from tests.referral import world


def _service(org_id: str, name: str = "Shelter beds") -> dict:
    return world.service(org_id, ["safety-shelter"], name=name)


async def test_auditor_reads_the_directory_and_nothing_clinical(make_org, make_client, client):
    org = await make_org("Coordination", "ngo")
    auditor = await make_client(org, role="auditor", scopes="system/*.rs")
    assert (await auditor.get("/Organization")).status_code == 200
    pid = (await client.post("/Patient", json=patient())).json()["id"]
    for r in (await auditor.get("/Patient"), await auditor.get(f"/Patient/{pid}"), await auditor.get("/Task")):
        assert_outcome(r, 403, text="role auditor")
    assert_outcome(await auditor.post("/Organization", json=organization("X")), 403)


def test_auditor_reads_audit_events_and_partners_only_read_them():
    """Partners may read and search AuditEvents; the audit log limits them to their own referrals' events
    (issue 5, tested in tests/audit/test_review.py)."""
    auditor = RequestContext("c1", "o1", "auditor", frozenset({"system/AuditEvent.rs"}))
    check_permission(auditor, "AuditEvent", "r")
    check_permission(auditor, "AuditEvent", "s")
    with pytest.raises(Forbidden):
        check_permission(auditor, "AuditEvent", "u")
    partner = RequestContext("c2", "o2", "partner", frozenset({"system/*.cruds"}))
    check_permission(partner, "AuditEvent", "r")
    for operation in "cud":
        with pytest.raises(Forbidden):
            check_permission(partner, "AuditEvent", operation)
    with pytest.raises(Forbidden):
        require_role(partner, "auditor")
    require_role(auditor, "auditor")
    require_role(system_context(), "auditor")
    unscoped = RequestContext("c3", "o1", "auditor", frozenset({"system/Organization.rs"}))
    with pytest.raises(Forbidden):
        check_permission(unscoped, "AuditEvent", "r")


def test_role_table():
    assert role_allows("admin", "Organization", "c") and role_allows("admin", "Location", "d")
    assert not role_allows("admin", "Task", "r") and not role_allows("admin", "Patient", "s")
    assert role_allows("partner", "Task", "c") and role_allows("partner", "HealthcareService", "u")
    assert not role_allows("partner", "Organization", "c") and not role_allows("partner", "HealthcareService", "d")
    assert not role_allows("anonymous", "Organization", "r")


async def test_admin_manages_the_directory_and_sees_no_referral(make_org, make_client, client):
    org = await make_org("Coordination", "ngo")
    admin = await make_client(org, role="admin", scopes="system/*.cruds")
    r = await admin.post("/Organization", json=organization("New shelter"))
    assert r.status_code == 201, r.text
    new_org = r.json()["id"]
    service = await admin.post("/HealthcareService", json=_service(new_org))
    assert service.status_code == 201, service.text
    tid = (await client.post("/Task", json=task(requester={"reference": f"Organization/{org}"}))).json()["id"]
    for r in (await admin.get(f"/Task/{tid}"), await admin.get("/Task"), await admin.post("/Patient", json=patient()),
              await admin.get("/ServiceRequest")):
        assert_outcome(r, 403, text="role admin")


async def test_partner_reads_but_does_not_write_the_directory(make_org, make_client):
    org = await make_org("Hotline", "hotline")
    partner = await make_client(org)
    assert (await partner.get(f"/Organization/{org}")).status_code == 200
    assert_outcome(await partner.post("/Organization", json=organization("Mine")), 403)
    assert_outcome(await partner.post("/HealthcareService", json=_service(org)), 403)
    assert_outcome(await partner.delete(f"/Organization/{org}"), 403)


async def test_partner_updates_its_own_healthcare_service_only(make_org, make_client, client):
    shelter, other = await make_org("Shelter", "shelter"), await make_org("Other shelter", "shelter")
    own = (await client.post("/HealthcareService", json=_service(shelter))).json()
    theirs = (await client.post("/HealthcareService", json=_service(other))).json()
    partner = await make_client(shelter)
    own["availabilityExceptions"] = "3 beds free tonight"
    r = await partner.put(f"/HealthcareService/{own['id']}", json=own)
    assert r.status_code == 200, r.text
    theirs["availabilityExceptions"] = "full"
    assert_outcome(await partner.put(f"/HealthcareService/{theirs['id']}", json=theirs), 403,
                   expression="HealthcareService.providedBy")
    moved = dict(r.json(), providedBy={"reference": f"Organization/{other}"})
    assert_outcome(await partner.put(f"/HealthcareService/{own['id']}", json=moved), 403,
                   expression="HealthcareService.providedBy")
    assert_outcome(await partner.delete(f"/HealthcareService/{own['id']}"), 403)


@pytest.mark.parametrize("rtype", ["Task", "ServiceRequest"])
async def test_partner_creates_only_referrals_it_requests(make_org, make_client, client, rtype):
    mine, other = await make_org("Hotline", "hotline"), await make_org("Clinic", "clinic")
    partner = await make_client(mine)
    if rtype == "Task":
        body = task()
    else:
        body = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                "subject": {"reference": "Patient/x"}}
    for requester in ({"reference": f"Organization/{other}"}, None):
        payload = dict(body, requester=requester) if requester else body
        r = await partner.post(f"/{rtype}", json=payload)
        assert_outcome(r, 403, expression=f"{rtype}.requester")
        assert (await partner.get(f"/{rtype}")).json().get("total", 0) == 0
    started = await world.referral_via_api(partner, client, mine, other, upto="Consent" if rtype == "ServiceRequest"
                                           else "ServiceRequest")
    body = world.task_for(started, mine, other) if rtype == "Task" else world.service_request(
        f"Patient/{started['Patient']}", mine, [f"Organization/{other}"], "safety-shelter", "safety-shelter",
        f"Consent/{started['Consent']}")
    ok = await partner.post(f"/{rtype}", json=dict(body, requester={"reference": f"Organization/{mine}"}))
    assert ok.status_code == 201, ok.text
    stolen = dict(ok.json(), requester={"reference": f"Organization/{other}"})
    assert_outcome(await partner.put(f"/{rtype}/{ok.json()['id']}", json=stolen), 403,
                   expression=f"{rtype}.requester")


async def test_requester_may_be_a_practitioner_role_of_the_own_organisation(make_org, make_client, client):
    mine = await make_org("Hotline", "hotline")
    role = (await client.post("/PractitionerRole", json={
        "resourceType": "PractitionerRole", "organization": {"reference": f"Organization/{mine}"}})).json()["id"]
    partner = await make_client(mine)
    other = await make_org("Shelter", "shelter")
    ids = await world.referral_via_api(partner, client, mine, other, requester_ref=f"PractitionerRole/{role}")
    assert (await partner.get(f"/Task/{ids['Task']}")).json()["requester"]["reference"] == f"PractitionerRole/{role}"


async def test_transaction_with_a_forbidden_entry_changes_nothing(make_org, make_client, client):
    mine = await make_org("Hotline", "hotline")
    partner = await make_client(mine)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:8c6f1d0e-1111-4a5e-9d1a-000000000001", "resource": patient("TX-1"),
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": organization("Sneaky"), "request": {"method": "POST", "url": "Organization"}}]}
    assert_outcome(await partner.post("", json=bundle), 403)
    assert (await client.get("/Patient?identifier=TX-1&_total=accurate")).json()["total"] == 0
    assert (await client.get("/Organization?name=Sneaky&_total=accurate")).json()["total"] == 0


async def test_each_interaction_checks_its_scope(make_org, make_client, client):
    mine = await make_org("Hotline", "hotline")
    reader = await make_client(mine, scopes="system/Patient.r system/Task.rs")
    pid = (await (await make_client(mine)).post("/Patient", json=patient())).json()["id"]
    assert (await reader.get(f"/Patient/{pid}")).status_code == 200
    searched = await reader.get("/Patient")
    assert_outcome(searched, 403, text="system/Patient.s")
    assert 'error="insufficient_scope"' in searched.headers["www-authenticate"]
    assert_outcome(await reader.post("/Patient", json=patient("X-2")), 403, text="system/Patient.c")
    current = (await reader.get(f"/Patient/{pid}")).json()
    assert_outcome(await reader.put(f"/Patient/{pid}", json=current), 403)
    assert_outcome(await reader.delete(f"/Patient/{pid}"), 403)
    assert_outcome(await reader.get("/Organization"), 403)


async def test_include_drops_what_the_scopes_do_not_cover(make_org, make_client, client):
    mine = await make_org("Hotline", "hotline")
    writer = await make_client(mine)
    tid = (await world.referral_via_api(writer, client, mine, await make_org("Shelter", "shelter")))["Task"]
    tasks_only = await make_client(mine, scopes="system/Task.rs")
    bundle = (await tasks_only.get(f"/Task?_id={tid}&_include=Task:patient")).json()
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Task"]
    both = (await writer.get(f"/Task?_id={tid}&_include=Task:patient")).json()
    assert sorted(e["resource"]["resourceType"] for e in both["entry"]) == ["Patient", "Task"]


async def test_conditional_create_needs_the_search_scope_before_it_looks(make_org, make_client, client):
    """A match answers 200 with the resource's id: a client that may not search Patients must not learn from it
    whether a survivor's record with that identifier exists. One that may search but not create is told of a match
    (it could search for it) and refused a create."""
    mine = await make_org("Hotline", "hotline")
    writer = await make_client(mine)
    await writer.post("/Patient", json=patient("PROBE-1"))
    condition = {"If-None-Exist": "identifier=PROBE-1"}
    create_only = await make_client(mine, scopes="system/Patient.c")
    refused = await create_only.post("/Patient", json=patient("PROBE-1"), headers=condition)
    assert_outcome(refused, 403, text="system/Patient.s")
    assert "PROBE-1" not in refused.text
    assert_outcome(await create_only.post("/Patient", json=patient("PROBE-2"),
                                          headers={"If-None-Exist": "identifier=PROBE-2"}), 403, text="system/Patient.s")
    search_only = await make_client(mine, scopes="system/Patient.rs")
    assert (await search_only.post("/Patient", json=patient("PROBE-1"), headers=condition)).status_code == 200
    assert_outcome(await search_only.post("/Patient", json=patient("PROBE-3"),
                                          headers={"If-None-Exist": "identifier=PROBE-3"}), 403, text="system/Patient.c")
    both = await make_client(mine, scopes="system/Patient.cs")
    assert (await both.post("/Patient", json=patient("PROBE-1"), headers=condition)).status_code == 200
    assert (await both.post("/Patient", json=patient("PROBE-2"), headers={"If-None-Exist": "identifier=PROBE-2"})
            ).status_code == 201
    assert (await client.get("/Patient?identifier=PROBE-1&_total=accurate")).json()["total"] == 1
    assert (await client.get("/Patient?identifier=PROBE-3&_total=accurate")).json()["total"] == 0
