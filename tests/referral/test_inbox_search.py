"""The inbox query: Tasks owned by an organisation's HealthcareServices are found through the chained owner search
and `owner-organization`; a chain never looks through a resource the caller cannot see."""
from __future__ import annotations

from exchange.fhir.definitions import OWNER_ORGANIZATION

from .conftest import change_task


async def _task_ids(http, headers: dict, **params) -> list[str]:  # noqa: ANN001
    r = await http.get("/Task", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return sorted(e["resource"]["id"] for e in r.json().get("entry", []))


async def test_inbox_finds_tasks_owned_by_the_organisations_services(http, as_, ids, make_referral):
    by_service = (await make_referral(to_keys=(f"HealthcareService/{ids['svc-shelter']}",)))["Task"]
    by_org = (await make_referral(to_keys=("shelter",)))["Task"]
    elsewhere = (await make_referral(to_keys=("clinic",), code="clinical-management-of-rape"))["Task"]
    hotline, shelter = as_(ids["hotline"]), as_(ids["shelter"])
    org = f"Organization/{ids['shelter']}"
    assert await _task_ids(http, hotline, owner=org) == [by_org]  # the plain reference misses the service's Task
    assert await _task_ids(http, hotline, **{"owner:HealthcareService.organization": org}) == [by_service]
    assert await _task_ids(http, hotline, **{"owner.organization": ids["shelter"]}) == [by_service]
    assert await _task_ids(http, hotline, **{"owner-organization": org}) == sorted([by_service, by_org])
    assert await _task_ids(http, shelter, **{"owner-organization": org, "status": "requested"}) == sorted(
        [by_service, by_org])
    both = f"{org},Organization/{ids['clinic']}"
    assert await _task_ids(http, hotline, **{"owner-organization": both}) == sorted([by_service, by_org, elsewhere])
    assert await _task_ids(http, hotline, **{"owner:HealthcareService.name": "shel"}) == [by_service]
    assert await _task_ids(http, hotline, **{"owner:HealthcareService.organization": f"Organization/{ids['clinic']}"}
                           ) == []
    r = await http.get("/Task", params={"owner-organization": org, "_count": "1"}, headers=shelter)
    assert r.json()["total"] == 2
    assert "owner-organization=Organization%2F" in r.json()["link"][0]["url"]


async def test_chain_never_looks_through_what_the_caller_cannot_see(http, as_, ids, make_referral):
    ref = await make_referral()
    shelter, hotline = as_(ids["shelter"]), as_(ids["hotline"])
    case_code = (await http.get(f"/Patient/{ref['Patient']}", headers=hotline)).json()["identifier"][0]["value"]
    assert await _task_ids(http, shelter, **{"patient.identifier": case_code}) == [ref["Task"]]
    assert (await change_task(http, shelter, ref["Task"], status="accepted")).status_code == 200
    consent = (await http.get(f"/Consent/{ref['Consent']}", headers=hotline)).json()
    r = await http.put(f"/Consent/{ref['Consent']}", json={**consent, "status": "inactive"}, headers=hotline)
    assert r.status_code == 200, r.text
    # the shelter still sees the (cancelled) Task but no longer her Patient: no chain may match through it
    assert await _task_ids(http, shelter, _id=ref["Task"]) == [ref["Task"]]
    assert await _task_ids(http, shelter, **{"patient.identifier": case_code}) == []
    assert await _task_ids(http, shelter, **{"patient:Patient.gender": "female"}) == []
    assert await _task_ids(http, shelter, **{"focus:ServiceRequest.status": "active"}) == []
    assert await _task_ids(http, hotline, **{"patient.identifier": case_code}) == [ref["Task"]]
    # an organisation that is party to nothing finds nothing either way
    other = as_(ids["other"])
    assert await _task_ids(http, other, **{"owner-organization": f"Organization/{ids['shelter']}"}) == []


async def test_chain_needs_the_scope_to_search_its_target(http, ids, make_referral, make_client):
    ref = await make_referral()
    narrow = await make_client(ids["shelter"], scopes="system/Task.rs")
    r = await narrow.get("/Task", params={"patient.identifier": "HTL-000000"})
    assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"
    assert "Patient" in r.json()["issue"][0]["diagnostics"]
    inbox = {"owner-organization": f"Organization/{ids['shelter']}"}
    r = await narrow.get("/Task", params=inbox)  # it looks through HealthcareService and PractitionerRole
    assert r.status_code == 403 and "HealthcareService" in r.json()["issue"][0]["diagnostics"]
    enough = await make_client(ids["shelter"], scopes="system/Task.rs system/HealthcareService.rs "
                                                      "system/PractitionerRole.rs")
    r = await enough.get("/Task", params=inbox)
    assert r.status_code == 200 and [e["resource"]["id"] for e in r.json()["entry"]] == [ref["Task"]]


async def test_chain_refusals_name_the_parameter_and_rule(http, as_, ids):
    hotline = {**as_(ids["hotline"]), "Prefer": "handling=strict"}
    cases = [
        ({"owner:Patient.identifier": "x"}, "not-supported", "chains only through"),
        ({"owner:HealthcareService.organization.name": "x"}, "not-supported", "more than one level"),
        ({"owner-organization": "Patient/abc"}, "invalid", "references such as Organization/id"),
        ({"owner-organization:missing": "true"}, "not-supported", "takes no modifier"),
        ({"owner:HealthcareService.organization": "Organization/a b"}, "invalid", "references such as Type/id"),
        ({"owner.nonsense": "x"}, "not-supported", "not a chain this server supports"),
    ]
    for params, code, text in cases:
        r = await http.get("/Task", params=params, headers=hotline)
        assert r.status_code == 400, (params, r.text)
        issue = r.json()["issue"][0]
        assert issue["code"] == code and text in issue["diagnostics"], (params, issue)
        assert "a b" not in r.text and "abc" not in r.text
    lenient = await http.get("/Task", params={"owner.nonsense": "x"}, headers=as_(ids["hotline"]))
    assert lenient.status_code == 200


async def test_owner_organization_is_published(http, as_, ids):
    statement = (await http.get("/metadata")).json()
    task = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Task")
    param = next(p for p in task["searchParam"] if p["name"] == "owner-organization")
    assert param == {"name": "owner-organization", "type": "reference", "definition": OWNER_ORGANIZATION,
                     "documentation": param["documentation"]} and "HealthcareService" in param["documentation"]
    r = await http.get("/SearchParameter/task-owner-organization", headers=as_(ids["hotline"]))
    assert r.status_code == 200
    body = r.json()
    assert body["url"] == OWNER_ORGANIZATION and body["code"] == "owner-organization" and body["base"] == ["Task"]
