"""Search: parameters, prefixes, modifiers, paging links, includes, strict handling."""
from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.fhir_checks import assert_bundle, assert_outcome, organization, patient, task

HOTLINE_CASE = "https://hotline.example.org/case"


async def _create(client, body: dict) -> dict:
    r = await client.post(f"/{body['resourceType']}", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _ids(bundle: dict, mode: str = "match") -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode}


async def _search(client, query: str, **kwargs) -> dict:
    r = await client.get(query, **kwargs)
    assert r.status_code == 200, r.text
    return assert_bundle(r.json(), "searchset")


@pytest.fixture
async def referral(client):
    """Two organisations, a patient, a service request and its task."""
    hotline = await _create(client, organization("Hotline"))
    shelter = await _create(client, organization("Shelter"))
    pat = await _create(client, patient("HL-1"))
    request = await _create(client, {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "identifier": [{"system": "https://hotline.example.org/referral", "value": "R-1"}],
        "category": [{"coding": [{"system": "https://gbv-exchange.org/fhir/CodeSystem/gbv-service-type",
                                  "code": "shelter"}]}],
        "subject": {"reference": f"Patient/{pat['id']}"},
        "requester": {"reference": f"Organization/{hotline['id']}"},
        "performer": [{"reference": f"Organization/{shelter['id']}"}]})
    the_task = await _create(client, task(
        focus={"reference": f"ServiceRequest/{request['id']}"}, **{"for": {"reference": f"Patient/{pat['id']}"}},
        requester={"reference": f"Organization/{hotline['id']}"}, owner={"reference": f"Organization/{shelter['id']}"},
        authoredOn="2026-11-20T10:00:00Z", businessStatus={"coding": [{"system": "urn:x", "code": "waiting"}]}))
    open_task = await _create(client, task(focus={"reference": f"ServiceRequest/{request['id']}"},
                                           requester={"reference": f"Organization/{hotline['id']}"},
                                           authoredOn="2026-10-01"))
    return dict(hotline=hotline, shelter=shelter, patient=pat, request=request, task=the_task, open_task=open_task)


async def test_task_search_parameters(client, referral):
    t, o = referral["task"]["id"], referral["open_task"]["id"]
    cases = {
        "status=requested": {t, o},
        "status=accepted": set(),
        f"owner=Organization/{referral['shelter']['id']}": {t},
        f"owner={referral['shelter']['id']}": {t},
        "owner:missing=true": {o},
        "owner:missing=false": {t},
        f"requester=Organization/{referral['hotline']['id']}": {t, o},
        f"focus=ServiceRequest/{referral['request']['id']}": {t, o},
        f"patient=Patient/{referral['patient']['id']}": {t},
        "code=http://hl7.org/fhir/CodeSystem/task-code|fulfill": {t, o},
        "code=fulfill": {t, o},
        "code=other|fulfill": set(),
        "business-status=waiting": {t},
        "authored-on=ge2026-11-01": {t},
        "authored-on=lt2026-11-01": {o},
        "authored-on=2026-11-20": {t},
        "authored-on=2026-10": {o},
        f"_id={t}": {t},
        f"_id={t},{o}": {t, o},
        "status:not=requested": set(),
    }
    for query, expected in cases.items():
        assert _ids(await _search(client, f"/Task?{query}")) == expected, query


async def test_service_request_search_parameters(client, referral):
    sr = referral["request"]["id"]
    for query in ("status=active", "intent=order", "category=shelter", f"patient={referral['patient']['id']}",
                  f"requester=Organization/{referral['hotline']['id']}",
                  f"performer=Organization/{referral['shelter']['id']}",
                  "identifier=https://hotline.example.org/referral|R-1", "identifier=R-1"):
        assert _ids(await _search(client, f"/ServiceRequest?{query}")) == {sr}, query
    assert _ids(await _search(client, "/ServiceRequest?identifier=other|R-1")) == set()


async def test_patient_and_consent_search(client, referral):
    assert _ids(await _search(client, f"/Patient?identifier={HOTLINE_CASE}|HL-1")) == {referral["patient"]["id"]}
    assert _ids(await _search(client, f"/Patient?identifier={HOTLINE_CASE}|HL-2")) == set()
    consent = await _create(client, {
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "patient": {"reference": f"Patient/{referral['patient']['id']}"}})
    assert _ids(await _search(client, f"/Consent?patient={referral['patient']['id']}")) == {consent["id"]}
    assert _ids(await _search(client, "/Consent?patient=someone-else")) == set()


async def test_directory_search(client):
    kind = "https://gbv-exchange.org/fhir/CodeSystem/organization-kind"
    shelter = await _create(client, organization("Dar Al-Aman Shelter", type=[{"coding": [{"system": kind, "code": "shelter"}]}],
                                                 identifier=[{"system": "urn:moi", "value": "S-9"}]))
    clinic = await _create(client, organization("Al-Noor Clinic", active=False))
    assert _ids(await _search(client, "/Organization?name=dar")) == {shelter["id"]}
    assert _ids(await _search(client, "/Organization?name=DAR%20AL")) == {shelter["id"]}
    assert _ids(await _search(client, "/Organization?name:contains=noor")) == {clinic["id"]}
    assert _ids(await _search(client, "/Organization?name:exact=Al-Noor%20Clinic")) == {clinic["id"]}
    assert _ids(await _search(client, "/Organization?name:exact=al-noor%20clinic")) == set()
    assert _ids(await _search(client, "/Organization?active=true")) == {shelter["id"]}
    assert _ids(await _search(client, f"/Organization?type={kind}|shelter")) == {shelter["id"]}
    assert _ids(await _search(client, "/Organization?identifier=urn:moi|S-9")) == {shelter["id"]}
    service = await _create(client, {
        "resourceType": "HealthcareService", "active": True, "name": "Emergency shelter",
        "providedBy": {"reference": f"Organization/{shelter['id']}"},
        "type": [{"coding": [{"system": "https://gbv-exchange.org/fhir/CodeSystem/gbv-service-type",
                              "code": "shelter"}]}],
        "communication": [{"coding": [{"system": "urn:ietf:bcp:47", "code": "prs"}]}]})
    assert _ids(await _search(client, "/HealthcareService?service-type=shelter&active=true")) == {service["id"]}
    assert _ids(await _search(client, "/HealthcareService?name=emergency")) == {service["id"]}
    assert _ids(await _search(client, "/HealthcareService?communication=prs")) == {service["id"]}
    assert _ids(await _search(client, "/HealthcareService?service-type=legal-aid")) == set()


async def test_last_updated_prefixes(client):
    first = await _create(client, organization("First"))
    await asyncio.sleep(0.01)
    second = await _create(client, organization("Second"))
    stamp = second["meta"]["lastUpdated"]
    assert _ids(await _search(client, f"/Organization?_lastUpdated=ge{stamp}")) == {second["id"]}
    assert _ids(await _search(client, f"/Organization?_lastUpdated=lt{stamp}")) == {first["id"]}
    assert _ids(await _search(client, "/Organization?_lastUpdated=gt2000-01-01")) == {first["id"], second["id"]}
    assert _ids(await _search(client, "/Organization?_lastUpdated=lt2000-01-01")) == set()


async def test_paging_across_pages_with_links_that_echo_used_parameters(client):
    created = {(await _create(client, organization(f"Org {n:02d}")))["id"] for n in range(7)}
    seen: list[str] = []
    url = "/Organization?active=true&_count=3&bogus=1"
    pages = 0
    while url:
        bundle = await _search(client, url)
        pages += 1
        assert bundle["total"] == 7
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        links = {l["relation"]: l["url"] for l in bundle["link"]}
        query = dict(parse_qsl(urlsplit(links["self"]).query))
        assert query["active"] == "true" and query["_count"] == "3"
        assert "bogus" not in query  # ignored parameters are left out of the self link
        if pages > 1:
            assert "previous" in links
        url = links.get("next")
    assert pages == 3
    assert len(seen) == 7 and set(seen) == created


async def test_count_and_summary_count(client):
    for n in range(3):
        await _create(client, organization(f"O{n}"))
    bundle = await _search(client, "/Organization?_summary=count")
    assert bundle["total"] == 3 and "entry" not in bundle
    bundle = await _search(client, "/Organization?_count=0")
    assert bundle["total"] == 3 and "entry" not in bundle
    assert len((await _search(client, "/Organization?_count=2"))["entry"]) == 2


async def test_total_whether_the_page_holds_the_last_match_or_not(client):
    """Bundle.total is every match, whichever page is asked: a full page, the last one, one past the end."""
    for n in range(5):
        await _create(client, organization(f"T{n}"))
    for query, entries in [("_count=10", 5), ("_count=5", 5), ("_count=3", 3), ("_count=3&_offset=3", 2),
                           ("_count=2&_offset=3", 2), ("_count=3&_offset=5", 0), ("_count=3&_offset=9", 0),
                           ("_count=3&_offset=4", 1)]:
        bundle = await _search(client, f"/Organization?{query}")
        assert bundle["total"] == 5 and len(bundle.get("entry", [])) == entries, query
    bundle = await _search(client, "/Organization?name=nobody-has-this-name&_count=3")
    assert bundle["total"] == 0 and "entry" not in bundle


async def test_sort(client):
    a = await _create(client, organization("A"))
    b = await _create(client, organization("B"))
    asc = await _search(client, "/Organization?_sort=_lastUpdated")
    desc = await _search(client, "/Organization?_sort=-_lastUpdated")
    assert [e["resource"]["id"] for e in asc["entry"]] == [a["id"], b["id"]]
    assert [e["resource"]["id"] for e in desc["entry"]] == [b["id"], a["id"]]
    assert_outcome(await client.get("/Organization?_sort=name"), 400, expression="_sort")


async def test_include_and_revinclude(client, referral):
    bundle = await _search(client, f"/Task?_id={referral['task']['id']}&_include=Task:focus&_include=Task:patient")
    assert _ids(bundle) == {referral["task"]["id"]}
    assert _ids(bundle, "include") == {referral["request"]["id"], referral["patient"]["id"]}
    bundle = await _search(client, f"/ServiceRequest?_id={referral['request']['id']}&_include=ServiceRequest:patient"
                                   "&_revinclude=Task:focus")
    assert _ids(bundle) == {referral["request"]["id"]}
    assert _ids(bundle, "include") == {referral["patient"]["id"], referral["task"]["id"], referral["open_task"]["id"]}
    assert_outcome(await client.get("/Task?_include=Task:nothing"), 400, expression="_include")


async def test_post_search_matches_get_search(client, referral):
    r = await client.post("/Task/_search", content=f"owner={referral['shelter']['id']}".encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert _ids(assert_bundle(r.json(), "searchset")) == {referral["task"]["id"]}
    r = await client.post("/Task/_search", json={"owner": "x"})
    assert_outcome(r, 415)


async def test_unknown_parameter_strict_is_400_lenient_is_ignored(client, referral):
    body = assert_outcome(await client.get("/Task?colour=red", headers={"Prefer": "handling=strict"}), 400,
                          text="Search parameter 1 is not a search parameter of Task")
    assert "colour" not in str(body)  # the caller's text is not repeated: it may be anything
    bundle = await _search(client, "/Task?colour=red", headers={"Prefer": "handling=lenient"})
    assert len(bundle["entry"]) == 2


@pytest.mark.parametrize("query,expression", [
    ("/Task?authored-on=yesterday", "authored-on"),
    ("/Task?_count=many", "_count"),
    ("/Task?owner:missing=maybe", "owner:missing"),
    ("/Task?status:fuzzy=x", "status"),
    ("/Task?_lastUpdated=ge2026-13-45", "_lastUpdated"),
])
async def test_bad_search_values_are_400(client, query, expression):
    assert_outcome(await client.get(query), 400, expression=expression)
