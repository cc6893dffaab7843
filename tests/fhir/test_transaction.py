"""transaction (all or nothing, urn:uuid references rewritten) and batch (each entry on its own)."""
from __future__ import annotations

import pytest

from tests.audit.conftest import audit_rows, references, subtypes
from tests.fhir_checks import assert_bundle, assert_outcome, organization, patient, task

CONDITION = "identifier=https://hotline.example.org/case|HL-7"


def _entry(resource: dict, full_url: str | None = None, method: str = "POST", url: str | None = None, **request):
    entry = {"resource": resource, "request": {"method": method, "url": url or resource["resourceType"], **request}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _referral_bundle() -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        # The Task comes first and points at resources created later in the same Bundle.
        _entry(task(focus={"reference": "urn:uuid:sr"}, **{"for": {"reference": "urn:uuid:pat"}},
                    requester={"reference": "urn:uuid:org"}), "urn:uuid:task"),
        _entry({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                "subject": {"reference": "urn:uuid:pat"}, "requester": {"reference": "urn:uuid:org"}}, "urn:uuid:sr"),
        _entry(patient("TX-1"), "urn:uuid:pat"),
        _entry(organization("Hotline"), "urn:uuid:org"),
    ]}


async def _count(client, resource_type: str) -> int:
    return (await client.get(f"/{resource_type}?_summary=count")).json()["total"]


async def test_transaction_creates_all_and_rewrites_urn_uuid_references(client):
    r = await client.post("", json=_referral_bundle())
    assert r.status_code == 200, r.text
    bundle = assert_bundle(r.json(), "transaction-response")
    statuses = [e["response"]["status"] for e in bundle["entry"]]
    assert statuses == ["201 Created"] * 4
    locations = [e["response"]["location"] for e in bundle["entry"]]
    task_ref, sr_ref, pat_ref, org_ref = (loc.split("/_history")[0] for loc in locations)
    stored_task = (await client.get(f"/{task_ref}")).json()
    assert stored_task["focus"]["reference"] == sr_ref
    assert stored_task["for"]["reference"] == pat_ref
    assert stored_task["requester"]["reference"] == org_ref
    stored_sr = (await client.get(f"/{sr_ref}")).json()
    assert stored_sr["subject"]["reference"] == pat_ref
    # the rewritten references are searchable
    found = (await client.get(f"/Task?focus={sr_ref}")).json()
    assert found["total"] == 1


async def test_transaction_failing_half_way_leaves_nothing(client):
    bundle = _referral_bundle()
    existing = (await client.post("/Organization", json=organization("Existing"))).json()
    bundle["entry"].append(_entry({**existing, "name": "changed"}, method="PUT",
                                  url=f"Organization/{existing['id']}", ifMatch='W/"9"'))  # stale: 412
    r = await client.post("", json=bundle)
    body = assert_outcome(r, 412)
    assert "Bundle.entry[4]" in body["issue"][0]["diagnostics"]
    for resource_type in ("Task", "ServiceRequest", "Patient"):
        assert await _count(client, resource_type) == 0
    assert await _count(client, "Organization") == 1
    assert (await client.get(f"/Organization/{existing['id']}")).json()["name"] == "Existing"


async def test_transaction_with_an_invalid_entry_is_400_naming_the_entry(client):
    bundle = _referral_bundle()
    bundle["entry"][2]["resource"]["gender"] = "robot"
    body = assert_outcome(await client.post("", json=bundle), 400, expression="Bundle.entry[2]")
    assert await _count(client, "Task") == 0
    assert body["issue"][0]["expression"][0].startswith("Bundle.entry[2].resource")


async def test_transaction_put_get_delete(client):
    org = (await client.post("/Organization", json=organization("A"))).json()
    gone = (await client.post("/Organization", json=organization("Gone"))).json()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": f"Organization/{org['id']}"}},
        _entry({**org, "name": "B"}, method="PUT", url=f"Organization/{org['id']}"),
        {"request": {"method": "DELETE", "url": f"Organization/{gone['id']}"}},
        {"request": {"method": "GET", "url": "Organization?name=B"}},
    ]}
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text
    entries = assert_bundle(r.json(), "transaction-response")["entry"]
    assert [e["response"]["status"] for e in entries] == ["200 OK", "200 OK", "204 No Content", "200 OK"]
    # GET runs after PUT (FHIR order DELETE, POST, PUT, GET): it sees the new name
    assert entries[0]["resource"]["name"] == "B"
    assert entries[3]["resource"]["total"] == 1
    assert (await client.get(f"/Organization/{gone['id']}")).status_code == 410


async def test_transaction_conditional_create_reuses_existing(client):
    existing = (await client.post("/Patient", json=patient("HL-7"))).json()
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        _entry(patient("HL-7"), "urn:uuid:p", ifNoneExist="identifier=https://hotline.example.org/case|HL-7"),
        _entry(task(**{"for": {"reference": "urn:uuid:p"}}), "urn:uuid:t"),
    ]}
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert entries[0]["response"]["status"] == "200 OK"
    task_ref = entries[1]["response"]["location"].split("/_history")[0]
    assert (await client.get(f"/{task_ref}")).json()["for"]["reference"] == f"Patient/{existing['id']}"
    assert await _count(client, "Patient") == 1


async def test_batch_runs_each_entry_on_its_own(client):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        _entry(organization("Good")),
        _entry({**organization("Bad"), "active": "maybe"}),
        {"request": {"method": "GET", "url": "Organization/unknown"}},
        {"request": {"method": "PATCH", "url": "Organization/x"}},
    ]}
    r = await client.post("", json=bundle)
    assert r.status_code == 200, r.text
    entries = assert_bundle(r.json(), "batch-response")["entry"]
    assert [e["response"]["status"].split()[0] for e in entries] == ["201", "400", "404", "400"]
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert await _count(client, "Organization") == 1


async def test_transaction_entry_without_request_is_400(client):
    r = await client.post("", json={"resourceType": "Bundle", "type": "transaction",
                                    "entry": [{"resource": organization("x")}]})
    assert_outcome(r, 400, expression="Bundle.entry[0].request")


def _as_recorded(event: dict) -> dict:
    """An AuditEvent without what differs between any two records (its id, time, entry and request id)."""
    kept = {k: v for k, v in event.items() if k not in ("id", "recorded", "_seq")}
    kept["entity"] = [e for e in event["entity"] if e.get("type", {}).get("code") != "XrequestId"]
    return kept


@pytest.mark.parametrize("kind", ["transaction", "batch"])
@pytest.mark.parametrize("prefer", [None, "return=representation"])
async def test_a_conditional_create_that_matches_is_recorded_as_the_route_records_it(make_org, make_client,
                                                                                    exchange, kind, prefer):
    """The matched resource is disclosed to the caller (its id, and with return=representation all of it): the
    entry records the same AuditEvent as the route's conditional POST (the create's read, the caller as agent), the
    Bundle's kind added as a further subtype, as on every entry's record."""
    hotline = await make_client(await make_org("Hotline", kind="hotline"))
    existing = (await hotline.post("/Patient", json=patient("HL-7"))).json()
    before = len(await audit_rows(exchange))
    r = await hotline.post("/Patient", json=patient("HL-7"), headers={"If-None-Exist": CONDITION})
    assert r.status_code == 200, r.text
    after_route = await audit_rows(exchange)
    [route] = after_route[before:]
    assert route["action"] == "R" and subtypes(route) == ["create"]
    assert references(route) == [f"Patient/{existing['id']}/_history/1"]

    headers = {"Prefer": prefer} if prefer else {}
    r = await hotline.post("", json={"resourceType": "Bundle", "type": kind, "entry": [
        _entry(patient("HL-7"), "urn:uuid:p", ifNoneExist=CONDITION)]}, headers=headers)
    assert r.status_code == 200, r.text
    [entry] = r.json()["entry"]
    assert entry["response"]["status"] == "200 OK"
    assert entry["fullUrl"].endswith(f"/Patient/{existing['id']}")
    assert ("resource" in entry) is (prefer is not None)
    [in_bundle] = (await audit_rows(exchange))[len(after_route):]
    expected = _as_recorded(route)
    expected["subtype"] = route["subtype"] + [{"system": "http://hl7.org/fhir/restful-interaction", "code": kind}]
    assert _as_recorded(in_bundle) == expected


# an update the route refuses: the url's id, the body, and the route's status and issue code
_REFUSED_PUTS = {"of an unknown id": (405, "not-supported"), "with another id": (400, "invalid"),
                 "without an id": (400, "required")}


@pytest.mark.parametrize("case", list(_REFUSED_PUTS))
async def test_a_refused_put_entry_answers_as_the_route(client, case):
    """The same status and OperationOutcome as the route's PUT: in a batch the entry's, in a transaction the whole
    Bundle's, its expression and text naming the entry (a 405 then says what the base accepts)."""
    created = (await client.post("/Organization", json=organization("A"))).json()
    resource_id, body = {
        "of an unknown id": ("nope", {**organization("A"), "id": "nope"}),
        "with another id": (created["id"], {**created, "id": "other"}),
        "without an id": (created["id"], {k: v for k, v in created.items() if k != "id"})}[case]
    status, code = _REFUSED_PUTS[case]
    route = await client.put(f"/Organization/{resource_id}", json=body)
    [issue] = assert_outcome(route, status, expression="Organization.id")["issue"]
    assert issue["code"] == code
    entries = [_entry(body, method="PUT", url=f"Organization/{resource_id}")]

    batch = await client.post("", json={"resourceType": "Bundle", "type": "batch", "entry": entries})
    assert batch.status_code == 200, batch.text
    [entry] = assert_bundle(batch.json(), "batch-response")["entry"]
    assert entry["response"] == {"status": f"{status} {route.reason_phrase}", "outcome": route.json()}

    transaction = await client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert assert_outcome(transaction, status)["issue"] == [
        {**issue, "expression": ["Bundle.entry[0].resource.id"],
         "diagnostics": f"Bundle.entry[0]: {issue['diagnostics']}"}]
    assert transaction.headers.get("allow") == ("POST" if status == 405 else None)
    assert (await client.get(f"/Organization/{created['id']}")).json()["meta"]["versionId"] == "1"
