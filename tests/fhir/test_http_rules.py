"""FHIR R4 http.html and search.html rules that generic clients (fhirpy, fhirclient, fhir-kit-client) rely on."""
from __future__ import annotations

import pytest

from tests.fhir_checks import assert_bundle, assert_outcome, organization, patient

STRICT = {"Prefer": "handling=strict"}


async def test_conformance_searches_page_sort_count_and_match_name_as_a_string(client):
    page = assert_bundle((await client.get("/CodeSystem", params={"_count": "2", "_sort": "-_id"})).json(),
                         "searchset")
    ids = [e["resource"]["id"] for e in page["entry"]]
    assert len(ids) == 2 and ids == sorted(ids, reverse=True) and page["total"] > 2
    nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
    assert "_offset=2" in nxt and "_count=2" in nxt
    second = (await client.get(nxt.replace("http://127.0.0.1:8080/fhir", ""))).json()
    assert not {e["resource"]["id"] for e in second["entry"]} & set(ids)
    by_name = (await client.get("/CodeSystem", params={"name": "gbvservice"})).json()  # starts-with, any case
    assert [e["resource"]["id"] for e in by_name["entry"]] == ["gbv-service-type"]
    assert (await client.get("/CodeSystem", params={"name:exact": "gbvservicetype"})).json()["total"] == 0
    assert "total" not in (await client.get("/ValueSet", params={"_total": "none"})).json()
    lenient = await client.get("/StructureDefinition", params={"unknown-param": "x", "_count": "1"})
    assert lenient.status_code == 200 and len(lenient.json()["entry"]) == 1
    strict = assert_outcome(await client.get("/StructureDefinition", params={"unknown-param": "x"}, headers=STRICT),
                            400)
    assert strict["issue"][0]["code"] == "not-supported"
    posted = await client.post("/ValueSet/_search", content="_id=gbv-data-category",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert [e["resource"]["id"] for e in posted.json()["entry"]] == ["gbv-data-category"]


async def test_format_with_a_literal_plus_is_fhir_json(client):
    r = await client.get("/Patient?_format=application/fhir+json")  # '+' unescaped: a space once decoded
    assert r.status_code == 200 and r.json()["resourceType"] == "Bundle"
    assert (await client.get("/Patient?_format=application/fhir%2Bxml")).status_code == 406


async def test_post_search_applies_the_parameters_in_the_url_too(client):
    await client.post("/Patient", json=patient("HL-1"))
    await client.post("/Patient", json=patient("HL-2", gender="male"))
    r = await client.post("/Patient/_search?gender=male", content="",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert [e["resource"]["gender"] for e in r.json()["entry"]] == ["male"]
    r = await client.post("/Patient/_search?gender=female", content="identifier=https://hotline.example.org/case|HL-2",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.json()["total"] == 0  # both apply (ANDed)


@pytest.mark.parametrize("prefer", ["representation", "OperationOutcome", "minimal"])
async def test_prefer_return_applies_to_each_transaction_entry(client, prefer):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": organization("A"), "request": {"method": "POST", "url": "Organization"}}]}
    entry = (await client.post("", json=bundle, headers={"Prefer": f"return={prefer}"})).json()["entry"][0]
    assert entry["response"]["status"] == "201 Created"
    assert ("resource" in entry) is (prefer == "representation")
    assert ("outcome" in entry["response"]) is (prefer == "OperationOutcome")
    if prefer == "representation":
        assert entry["resource"]["name"] == "A" and entry["resource"]["meta"]["versionId"] == "1"
    if prefer == "OperationOutcome":
        assert entry["response"]["outcome"]["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("summary", ["true", "text", "data", "false"])
async def test_summary_is_served_whole_under_lenient_handling(client, summary):
    await client.post("/Patient", json=patient())
    r = await client.get("/Patient", params={"_summary": summary})
    assert r.status_code == 200 and r.json()["entry"][0]["resource"]["identifier"]
    strict = await client.get("/Patient", params={"_summary": summary}, headers=STRICT)
    if summary == "false":
        assert strict.status_code == 200
    else:
        assert_outcome(strict, 400, expression="_summary")
    assert_outcome(await client.get("/Patient", params={"_summary": "bogus"}), 400, expression="_summary")


async def test_head_answers_wherever_get_does(client):
    created = (await client.post("/Organization", json=organization("A"))).json()
    for path in ("/metadata", f"/Organization/{created['id']}", "/Organization", "/CodeSystem/gbv-service-type",
                 f"/Organization/{created['id']}/_history/1"):
        get, head = await client.get(path), await client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], path
    head = await client.head(f"/Organization/{created['id']}")
    assert head.headers["etag"] == 'W/"1"'
    assert (await client.head("/Organization/unknown")).status_code == 404


async def test_type_and_system_history_say_not_supported(client):
    for path in ("/Task/_history", "/_history"):
        r = await client.get(path)
        outcome = assert_outcome(r, 405, expression="_history")
        assert outcome["issue"][0]["code"] == "not-supported" and r.headers["allow"] == ""


async def test_405_answers_carry_allow_with_every_method_of_the_path(client):
    r = await client.patch("/Organization/x", json={})
    assert_outcome(r, 405)
    assert r.headers["allow"] == "DELETE, GET, HEAD, PUT"
    r = await client.delete("/Organization")
    assert_outcome(r, 405)
    assert r.headers["allow"] == "GET, HEAD, POST"
    r = await client.put("/AuditEvent/x", json={})
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
