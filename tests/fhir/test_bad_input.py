"""Hostile or extreme input gets a 4xx OperationOutcome naming the element and the rule, never a 5xx."""
from __future__ import annotations

import pytest

from tests.fhir_checks import assert_outcome, patient, task

BIG = str(2 ** 63)


async def test_counts_and_offsets_beyond_64_bits_are_400(client):
    for path, expression in [(f"/Patient?_offset={BIG}", "_offset"), (f"/Patient?_count={BIG}", "_count"),
                             (f"/Patient/x/_history?_offset={BIG}", "_offset"), ("/Patient?_offset=%EF%BC%91", "_offset"),
                             (f"/AuditEvent?_offset={BIG}", "_offset")]:
        assert_outcome(await client.get(path), 400, expression=expression)


async def test_public_checkpoint_tree_size_beyond_64_bits_is_400(client):
    r = await client.get(f"http://127.0.0.1:8080/.well-known/audit-checkpoint?tree_size={BIG}")
    assert_outcome(r, 400, expression="tree_size")


async def test_version_numbers_beyond_the_column_are_404_and_400(client):
    created = (await client.post("/Patient", json=patient())).json()
    for version in (BIG, "99999999999"):
        assert_outcome(await client.get(f"/Patient/{created['id']}/_history/{version}"), 404)
        r = await client.put(f"/Patient/{created['id']}", json=created, headers={"If-Match": f'W/"{version}"'})
        assert_outcome(r, 400, expression="If-Match")


EDGE_DATES = ["9999-12-31", "9999-12", "9999", "0001-01-01", "0001", "9999-12-31T23:59:59-05:00",
              "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59.999999Z"]


async def test_search_dates_at_the_ends_of_the_calendar_answer(client):
    for value in EDGE_DATES + ["lt0001-01-01", "gt9999-12-31", "ap9999-12-31", "ne0001"]:
        for params in ({"authored-on": value}, {"_lastUpdated": value}, {"date": value}):
            r = await client.get("/AuditEvent" if "date" in params else "/Task", params=params)
            assert r.status_code == 200, (value, r.text)
    for value in EDGE_DATES:  # $export takes dates without prefixes
        r = await client.get("/AuditEvent/$export", params={"_since": value, "_until": value})
        assert r.status_code == 200, (value, r.text)


async def test_resource_dates_at_the_ends_of_the_calendar_are_stored_and_found(client):
    for value in EDGE_DATES:
        r = await client.post("/Task", json=task(authoredOn=value, restriction={"period": {"end": value}}))
        assert r.status_code == 201, r.text
        found = (await client.get("/Task", params={"authored-on": value, "_id": r.json()["id"]})).json()
        assert found["total"] == 1, value


def _nested(depth: int) -> bytes:
    """A Patient whose extensions nest `depth` deep (built as text: too deep for a JSON encoder)."""
    head = '{"url": "http://example.org/x", "extension": [' * depth
    leaf = '{"url": "http://example.org/x", "valueString": "leaf"}'
    inner = head + leaf + "]}" * depth
    return ('{"resourceType": "Patient", "gender": "female", "extension": [' + inner + ']}').encode()


async def test_deeply_nested_json_is_400_naming_the_depth_rule(client):
    for depth in (40, 1000, 5000):
        r = await client.post("/Patient", content=_nested(depth))
        assert_outcome(r, 400, text="nested more than 64 levels")
        r = await client.post("", content=_nested(depth).replace(b'"Patient"', b'"Bundle"'))
        assert_outcome(r, 400, text="nested more than 64 levels")
    assert (await client.get("/Patient?_summary=count")).json()["total"] == 0


async def test_nesting_within_the_limit_is_accepted(client):
    assert (await client.post("/Patient", content=_nested(20))).status_code == 201


async def test_more_or_values_than_the_limit_is_400(client, settings):
    values = ",".join(f"HL-{i}" for i in range(1500))
    assert_outcome(await client.get("/Patient", params={"identifier": values}), 400, expression="identifier")
    r = await client.post("/Patient/_search", content=f"identifier={values}".encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_outcome(r, 400, expression="identifier")


async def test_or_values_up_to_the_limit_answer(client, settings):
    values = ",".join(f"HL-{i}" for i in range(settings.search_max_or_values))
    r = await client.get("/Patient", params={"identifier": values, "_id": ",".join(f"i{i}" for i in range(100))})
    assert r.status_code == 200, r.text


async def test_more_parameters_than_the_limit_is_400(client, settings):
    params = [("identifier", f"HL-{i}") for i in range(settings.search_max_parameters + 1)]
    assert_outcome(await client.get("/Patient", params=params), 400, text="at most")


async def test_ids_no_resource_can_have_are_400_before_the_database(client):
    for path in ["/Patient/a%00b", "/Patient/" + "a" * 65, "/Patient/" + "a" * 65 + "/_history/1",
                 "/Patient/" + "a" * 65 + "/_history", "/Patient/a%20b"]:
        assert_outcome(await client.get(path), 400, expression="Patient.id")
        assert_outcome(await client.delete(path.split("/_history")[0]), 400, expression="Patient.id")
    assert_outcome(await client.get("/AuditEvent", params={"entity": "Patient/a\x00"}), 400, expression="entity")


async def test_update_to_an_id_no_resource_can_have_is_400(client):
    body = patient(id="a" * 65)
    assert_outcome(await client.put("/Patient/" + "a" * 65, json=body), 400, expression="Patient.id")


async def test_search_values_no_index_can_hold_are_400(client):
    for resource_type, params, expression in [
        ("Organization", {"name": "a\x00b"}, "name"), ("Patient", {"identifier": "s|a\x00b"}, "identifier"),
        ("Patient", {"_id": "a\x00b"}, "_id"), ("Patient", {"_id": "a" * 65}, "_id"),
        ("Patient", {"identifier": "x" * 300}, "identifier"), ("Organization", {"name": "x" * 300}, "name"),
        ("Task", {"owner": "Organization/" + "a" * 80}, "owner"), ("Task", {"owner": "Organization/a\x00"}, "owner"),
        ("Task", {"authored-on": "2020\x00"}, "authored-on"), ("Task", {"_sort": "\x00"}, "_sort"),
        ("AuditEvent", {"agent": "a\x00"}, "agent"), ("AuditEvent", {"_id": "a\x00"}, "_id"),
    ]:
        assert_outcome(await client.get(f"/{resource_type}", params=params), 400, expression=expression)


async def test_resource_values_no_column_can_hold_are_400(client):
    for body, expression in [
        (patient("HL-\x00-1"), "Patient.identifier[0].value"),
        (task(owner={"reference": "Organization/" + "a" * 80}), "Task.owner.reference"),
        (task(owner={"reference": "Organization/a\x00b"}), "Task.owner.reference"),
    ]:
        assert_outcome(await client.post(f"/{body['resourceType']}", json=body), 400, expression=expression)


async def test_a_system_longer_than_the_index_column_is_stored_whole(client):
    body = patient(identifier=[{"system": "https://x.example.org/" + "s" * 300, "value": "HL-1"}])
    r = await client.post("/Patient", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["identifier"][0]["system"] == body["identifier"][0]["system"]


async def test_batch_with_more_entries_than_the_limit_is_400(client, settings):
    entries = [{"request": {"method": "GET", "url": "Patient?_count=1"}}] * (settings.bundle_max_entries + 1)
    r = await client.post("", json={"resourceType": "Bundle", "type": "batch", "entry": entries})
    assert_outcome(r, 400, expression="Bundle.entry")


async def test_batch_of_searches_with_includes_stops_at_the_request_budget(client, settings):
    for i in range(30):
        org = (await client.post("/Organization", json={"resourceType": "Organization", "name": f"O{i}"})).json()
        await client.post("/Task", json=task(owner={"reference": f"Organization/{org['id']}"},
                                             requester={"reference": f"Organization/{org['id']}"}))
    search = {"request": {"method": "GET", "url": "Task?_count=30&_include=Task:owner&_include=Task:requester"}}
    r = await client.post("", json={"resourceType": "Bundle", "type": "batch",
                                    "entry": [search] * settings.bundle_max_entries})
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    returned = sum(len(e.get("resource", {}).get("entry", [])) for e in entries)
    assert returned <= settings.request_max_resources
    refused = [e for e in entries if e["response"]["status"].startswith("400")]
    assert refused and all(e["response"]["outcome"]["issue"][0]["code"] == "too-costly" for e in refused)
    assert len(refused) == settings.bundle_max_entries - settings.request_max_resources // 60


async def test_search_including_more_than_the_budget_is_400(client, exchange):
    exchange.settings.request_max_resources = 10
    pid = (await client.post("/Patient", json=patient())).json()["id"]
    for _ in range(12):
        await client.post("/Task", json=task(**{"for": {"reference": f"Patient/{pid}"}}))
    r = await client.get("/Patient", params={"_revinclude": "Task:patient"})
    assert_outcome(r, 400, expression="_revinclude")


async def test_a_contained_resource_whose_type_is_not_a_string_is_400(client):
    for kind in (["Patient"], {"a": 1}, 7):
        body = dict(patient(), contained=[{"resourceType": kind, "id": "c1"}])
        assert_outcome(await client.post("/Patient", json=body), 400, expression="Patient.contained[0].resourceType")
