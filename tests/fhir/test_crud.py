"""create, read, vread, update, delete and history through HTTP."""
from __future__ import annotations

import pytest

from tests.fhir_checks import assert_bundle, assert_outcome, assert_valid, organization, patient, task


async def test_create_returns_201_with_location_etag_and_last_modified(client):
    r = await client.post("/Patient", json=patient(id="client-chosen", meta={"versionId": "7"}))
    assert r.status_code == 201, r.text
    body = assert_valid(r.json())
    assert body["id"] != "client-chosen"  # client ids are ignored
    assert body["meta"]["versionId"] == "1"
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"] == f"http://127.0.0.1:8080/fhir/Patient/{body['id']}/_history/1"
    assert r.headers["last-modified"].endswith("GMT")
    assert r.headers["content-type"] == "application/fhir+json; charset=utf-8"


async def test_read_returns_what_was_created(client):
    created = (await client.post("/Patient", json=patient(name=[{"text": "ليلى"}]))).json()
    r = await client.get(f"/Patient/{created['id']}")
    assert r.status_code == 200
    assert r.json() == created
    assert r.json()["name"][0]["text"] == "ليلى"  # right-to-left text survives the round trip
    assert r.headers["etag"] == 'W/"1"'


async def test_read_unknown_is_404_outcome(client):
    assert_outcome(await client.get("/Patient/does-not-exist"), 404, expression="Patient.id")


async def test_unsupported_type_is_404(client):
    assert_outcome(await client.get("/Observation/1"), 404, text="not supported")


async def test_update_creates_version_2_and_vread_keeps_version_1(client):
    created = (await client.post("/Organization", json=organization("Shelter A"))).json()
    changed = {**created, "name": "Shelter B"}
    r = await client.put(f"/Organization/{created['id']}", json=changed, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'
    v1 = await client.get(f"/Organization/{created['id']}/_history/1")
    assert v1.status_code == 200 and v1.json()["name"] == "Shelter A"
    v2 = await client.get(f"/Organization/{created['id']}/_history/2")
    assert v2.json()["name"] == "Shelter B"
    assert_outcome(await client.get(f"/Organization/{created['id']}/_history/3"), 404)
    assert_outcome(await client.get(f"/Organization/{created['id']}/_history/x"), 404)


async def test_update_with_stale_if_match_is_412_and_changes_nothing(client):
    created = (await client.post("/Organization", json=organization("Shelter A"))).json()
    await client.put(f"/Organization/{created['id']}", json={**created, "name": "B"})
    r = await client.put(f"/Organization/{created['id']}", json={**created, "name": "C"},
                         headers={"If-Match": 'W/"1"'})
    assert_outcome(r, 412, expression="If-Match")
    current = (await client.get(f"/Organization/{created['id']}")).json()
    assert current["name"] == "B" and current["meta"]["versionId"] == "2"


async def test_update_with_different_body_id_is_400(client):
    created = (await client.post("/Organization", json=organization("A"))).json()
    r = await client.put(f"/Organization/{created['id']}", json={**created, "id": "other"})
    assert_outcome(r, 400, expression="Organization.id")


async def test_update_without_body_id_is_400(client):
    created = (await client.post("/Organization", json=organization("A"))).json()
    body = {k: v for k, v in created.items() if k != "id"}
    assert_outcome(await client.put(f"/Organization/{created['id']}", json=body), 400, expression="Organization.id")


async def test_update_of_unknown_resource_is_405_no_update_as_create(client):
    r = await client.put("/Organization/nope", json={**organization("A"), "id": "nope"})
    assert_outcome(r, 405, expression="Organization.id", text="update as create")
    assert r.headers["allow"] == "GET, HEAD"
    assert_outcome(await client.get("/Organization/nope"), 404)


async def test_malformed_if_match_is_400(client):
    created = (await client.post("/Organization", json=organization("A"))).json()
    r = await client.put(f"/Organization/{created['id']}", json=created, headers={"If-Match": "banana"})
    assert_outcome(r, 400, expression="If-Match")


@pytest.mark.parametrize("prefer,status,kind", [
    ("return=minimal", 201, None), ("return=representation", 201, "Patient"),
    ("return=OperationOutcome", 201, "OperationOutcome")])
async def test_prefer_return_on_create(client, prefer, status, kind):
    r = await client.post("/Patient", json=patient(), headers={"Prefer": prefer})
    assert r.status_code == status
    assert r.headers["location"]
    if kind is None:
        assert r.content == b""
    else:
        assert r.json()["resourceType"] == kind


async def test_prefer_return_minimal_on_update(client):
    created = (await client.post("/Patient", json=patient())).json()
    r = await client.put(f"/Patient/{created['id']}", json=created, headers={"Prefer": "return=minimal"})
    assert r.status_code == 200 and r.content == b"" and r.headers["etag"] == 'W/"2"'


async def test_delete_then_read_is_410_and_history_shows_the_deletion(client):
    created = (await client.post("/Organization", json=organization("A"))).json()
    r = await client.delete(f"/Organization/{created['id']}")
    assert r.status_code == 204
    assert_outcome(await client.get(f"/Organization/{created['id']}"), 410)
    history = assert_bundle((await client.get(f"/Organization/{created['id']}/_history")).json(), "history")
    assert history["total"] == 2
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history["entry"][0]
    assert_outcome(await client.delete(f"/Organization/{created['id']}"), 404)


async def test_history_lists_every_version_newest_first_with_paging(client):
    created = (await client.post("/Organization", json=organization("v1"))).json()
    for n in range(2, 6):
        await client.put(f"/Organization/{created['id']}", json={**created, "name": f"v{n}"})
    page1 = assert_bundle((await client.get(f"/Organization/{created['id']}/_history?_count=2")).json(), "history")
    assert page1["total"] == 5
    assert [e["resource"]["meta"]["versionId"] for e in page1["entry"]] == ["5", "4"]
    next_url = next(l["url"] for l in page1["link"] if l["relation"] == "next")
    page2 = (await client.get(next_url)).json()
    assert [e["resource"]["meta"]["versionId"] for e in page2["entry"]] == ["3", "2"]
    assert page1["entry"][0]["response"]["etag"] == 'W/"5"'


async def test_history_of_unknown_is_404(client):
    assert_outcome(await client.get("/Organization/nope/_history"), 404)


async def test_task_round_trip_keeps_every_element(client):
    body = task(authoredOn="2026-11-20T10:00:00Z", lastModified="2026-11-20T11:00:00Z",
                note=[{"text": "Interpreter: Dari"}], businessStatus={"text": "waiting"})
    created = (await client.post("/Task", json=body)).json()
    for key, value in body.items():
        assert created[key] == value


async def test_a_create_under_a_taken_id_fails_and_leaves_nothing(client, exchange):
    """Only the exchange chooses ids (organisations added with a stable id): a second create under one fails, and
    none of its rows stays (its resource row goes to the database with the unit's other rows, in one transaction)."""
    from sqlalchemy.exc import IntegrityError

    from exchange.context import system_context
    from exchange.fhir.interactions import create
    from tests.audit.conftest import audit_rows

    await create.create(exchange, system_context(), "Organization", organization("First"), None, "stable-id")
    records = len(await audit_rows(exchange))
    with pytest.raises(IntegrityError):
        await create.create(exchange, system_context(), "Organization", organization("Second"), None, "stable-id")
    assert len(await audit_rows(exchange)) == records  # (no change, no record of one)
    r = await client.get("/Organization/stable-id")
    assert r.status_code == 200 and r.json()["name"] == "First" and r.headers["etag"] == 'W/"1"'
    assert (await client.get("/Organization/stable-id/_history")).json()["total"] == 1
    assert (await client.get("/Organization?name=Second&_summary=count")).json()["total"] == 0
