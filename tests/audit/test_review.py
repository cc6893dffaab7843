"""Reviewing the log over HTTP: auditor search and paging, read, NDJSON export; partners see only their
referrals' events; administrators none; the log cannot be written through the API."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tests.audit.conftest import subtypes
from tests.audit.story import referral_story
from tests.fhir_checks import assert_bundle, assert_outcome, assert_valid

AUDIT = "system/AuditEvent.rs"


async def _auditor(make_org, make_client):  # noqa: ANN001, ANN202
    return await make_client(await make_org("Coordination body", "other"), role="auditor", scopes=AUDIT)


def _ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


async def test_auditor_searches_by_agent_entity_action_outcome_and_date(app, make_org, make_client, exchange):
    ids = await referral_story(app, make_org, make_client)
    auditor = await _auditor(make_org, make_client)
    everything = (await auditor.get("/AuditEvent", params={"_count": "200"})).json()
    assert_bundle(everything, "searchset")
    total = everything["total"]
    assert total == len(everything["entry"]) > 10

    by_entity = (await auditor.get("/AuditEvent", params={"entity": f"ServiceRequest/{ids['sr']}"})).json()
    kinds = sorted(subtypes(e["resource"])[0] + e["resource"]["outcome"] for e in by_entity["entry"])
    assert kinds == ["create0", "history-instance0", "read0", "read4", "read4", "update0", "vread0"]  # 404 and 403 are outcome 4
    refused = (await auditor.get("/AuditEvent", params={"entity": f"ServiceRequest/{ids['sr']}",
                                                         "outcome": "4"})).json()
    assert refused["total"] == 2
    by_other = (await auditor.get("/AuditEvent", params={"agent": f"Organization/{ids['other']}"})).json()
    assert sorted(subtypes(e["resource"])[0] + e["resource"]["outcome"] for e in by_other["entry"]) == \
        ["110122" + "0", "110122" + "0", "read4", "read4"]  # two tokens issued, two refused reads
    by_client = (await auditor.get("/AuditEvent", params={"agent": ids["prober"]})).json()
    assert by_client["total"] == 2  # the prober's token and its refused read (the narrow client is another)
    refused_tokens = (await auditor.get("/AuditEvent", params={"subtype": "110122", "outcome": "4"})).json()
    assert refused_tokens["total"] == 1
    assert refused_tokens["entry"][0]["resource"]["outcomeDesc"] == "401 Unauthorized"
    deletes = (await auditor.get("/AuditEvent", params={"action": "D"})).json()
    assert deletes["total"] == 1
    creates_and_deletes = (await auditor.get("/AuditEvent", params={"action": "C,D"})).json()
    assert creates_and_deletes["total"] == 1 + sum(1 for e in everything["entry"] if e["resource"]["action"] == "C")

    today = datetime.now(timezone.utc).date()
    assert (await auditor.get("/AuditEvent", params={"date": f"ge{today}", "_count": "0"})).json()["total"] > total
    tomorrow = today + timedelta(days=1)
    assert (await auditor.get("/AuditEvent", params={"date": f"ge{tomorrow}"})).json()["total"] == 0
    assert (await auditor.get("/AuditEvent", params=[("date", f"ge{today}"), ("date", f"lt{tomorrow}"),
                                                     ("action", "U")])).json()["total"] == 1


async def test_entity_search_finds_events_by_their_first_and_their_further_resources(app, make_org, make_client,
                                                                                   exchange):
    """A search's AuditEvent names every resource it returned; `entity=` finds it by any of them, not only by the
    first (kept beside the event) but also by those after it (kept in a table of their own)."""
    ids = await referral_story(app, make_org, make_client)
    hotline = await make_client(ids["hotline"])
    r = await hotline.get("/ServiceRequest", params={"_id": ids["sr"], "_include": "ServiceRequest:patient"})
    assert [e["resource"]["resourceType"] for e in r.json()["entry"]] == ["ServiceRequest", "Patient"]
    auditor = await _auditor(make_org, make_client)
    found = (await auditor.get("/AuditEvent", params={"entity": f"Patient/{ids['patient']}",
                                                      "subtype": "search-type", "_sort": "date"})).json()
    firsts = [e["resource"]["entity"][0]["what"]["reference"].split("/")[0] for e in found["entry"]]
    assert (found["total"], firsts) == (2, ["Patient", "ServiceRequest"])  # the story's Patient search, then ours


async def test_auditor_pages_through_the_log_and_reads_one_event(app, make_org, make_client, exchange):
    await referral_story(app, make_org, make_client)
    auditor = await _auditor(make_org, make_client)
    first = (await auditor.get("/AuditEvent", params={"_count": "5"})).json()
    assert len(first["entry"]) == 5
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = (await auditor.get(next_url)).json()
    assert len(second["entry"]) == 5 and not set(_ids(first)) & set(_ids(second))
    newest_first = (await auditor.get("/AuditEvent", params={"_sort": "-date", "_count": "1"})).json()
    assert newest_first["entry"][0]["resource"]["id"] != first["entry"][0]["resource"]["id"]

    event_id = first["entry"][0]["resource"]["id"]
    r = await auditor.get(f"/AuditEvent/{event_id}")
    assert r.status_code == 200
    event = assert_valid(r.json())
    chain = {e["url"]: e for e in event["extension"][0]["extension"]}
    assert chain["sequence"]["valueInteger"] == 1 and len(chain["hash"]["valueString"]) == 64
    assert_outcome(await auditor.get("/AuditEvent/no-such-event"), 404)


async def test_total_none_leaves_the_count_out_and_the_links_say_whether_there_is_more(app, make_org, make_client):
    await referral_story(app, make_org, make_client)
    auditor = await _auditor(make_org, make_client)
    counted = (await auditor.get("/AuditEvent", params={"_count": "4", "_sort": "-date"})).json()
    uncounted = (await auditor.get("/AuditEvent", params={"_count": "4", "_sort": "-date", "_total": "none"})).json()
    assert counted["total"] > 8 and "total" not in uncounted
    assert _ids(uncounted)[1:] == _ids(counted)[:3]  # (the counted search's own record is the newest now)
    next_link = next(link["url"] for link in uncounted["link"] if link["relation"] == "next")
    assert "_total=none" in next_link
    everything = (await auditor.get("/AuditEvent", params={"_count": "200", "_total": "none"})).json()
    assert not [link for link in everything["link"] if link["relation"] == "next"]
    # a page that holds the last match tells the total without a count
    assert everything["total"] == len(everything["entry"]) == counted["total"] + 2  # (and the two searches since)
    assert_outcome(await auditor.get("/AuditEvent", params={"_total": "some"}), 400, expression="_total")


async def test_bad_audit_searches_are_refused_with_an_outcome(make_org, make_client):
    auditor = await _auditor(make_org, make_client)
    refused = assert_outcome(await auditor.get("/AuditEvent", params={"patient": "Patient/1"}), 400,
                             text="AuditEvent search supports")
    assert "patient" not in str(refused)  # an unknown parameter's name is the caller's text: not repeated
    assert_outcome(await auditor.get("/AuditEvent", params={"action": "X"}), 400, expression="action")
    assert_outcome(await auditor.get("/AuditEvent", params={"date": "yesterday"}), 400, expression="date")
    assert_outcome(await auditor.get("/AuditEvent", params={"entity": "nonsense"}), 400, expression="entity")


async def test_a_partner_sees_only_its_referrals_events(app, make_org, make_client, exchange):
    ids = await referral_story(app, make_org, make_client)
    shelter = await make_client(ids["shelter"], scopes=AUDIT)
    seen = (await shelter.get("/AuditEvent", params={"_count": "200"})).json()
    assert seen["total"] > 0
    visible_refs = {f"ServiceRequest/{ids['sr']}", f"Patient/{ids['patient']}",
                    f"Consent/{ids['consent']}"}  # the referral's supportingInfo: shared with the shelter
    for entry in seen["entry"]:
        event = entry["resource"]
        refs = {"/".join(e["what"]["reference"].split("/")[:2]) for e in event.get("entity", [])
                if "reference" in e.get("what", {})}
        assert refs and refs <= visible_refs, refs
        if event["agent"][0]["who"].get("reference") != f"Organization/{ids['shelter']}":
            assert all("network" not in a for a in event["agent"])
    other = await make_client(ids["other"], scopes=AUDIT)
    theirs = (await other.get("/AuditEvent", params={"entity": f"ServiceRequest/{ids['sr']}"})).json()
    assert theirs["total"] == 0  # not even its own refused attempts on a referral it is not party to
    some_event = seen["entry"][0]["resource"]["id"]
    assert_outcome(await other.get(f"/AuditEvent/{some_event}"), 404)
    assert (await shelter.get(f"/AuditEvent/{some_event}")).status_code == 200


async def test_admins_and_clients_without_the_scope_cannot_review(make_org, make_client):
    operator = await make_org("Exchange operator", "other")
    admin = await make_client(operator, role="admin", scopes="system/*.cruds")
    assert_outcome(await admin.get("/AuditEvent"), 403)
    assert_outcome(await admin.get("/AuditEvent/$export"), 403)
    no_scope = await make_client(operator, role="auditor", scopes="system/Organization.rs")
    assert_outcome(await no_scope.get("/AuditEvent"), 403)


async def test_the_log_cannot_be_written_through_the_api(client):
    event = {"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2026-01-01T00:00:00Z",
             "agent": [], "source": {"observer": {}}}
    assert_outcome(await client.post("/AuditEvent", json=event), 405)
    assert_outcome(await client.put("/AuditEvent/x", json=event | {"id": "x"}), 405)
    assert_outcome(await client.delete("/AuditEvent/x"), 405)


async def test_auditor_exports_ndjson_and_partners_cannot(app, make_org, make_client, exchange):
    ids = await referral_story(app, make_org, make_client)
    auditor = await _auditor(make_org, make_client)
    r = await auditor.get("/AuditEvent/$export", params={"_since": "2000-01-01"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    seqs = [next(x["valueInteger"] for x in line["extension"][0]["extension"] if x["url"] == "sequence")
            for line in lines]
    assert seqs == list(range(1, len(lines) + 1))
    later = await auditor.get("/AuditEvent/$export", params={"_since": "2999-01-01"})
    assert later.status_code == 200 and later.text == ""
    assert_outcome(await (await make_client(ids["shelter"], scopes=AUDIT)).get("/AuditEvent/$export"), 403)
    assert_outcome(await auditor.get("/AuditEvent/$export", params={"since": "2000"}), 400)
    exports = (await auditor.get("/AuditEvent", params={"subtype": "operation"})).json()
    assert exports["total"] >= 2  # exporting is itself recorded


async def test_export_honours_accept_ndjson_and_is_no_bulk_data_kick_off(app, make_org, make_client, exchange):
    auditor = await _auditor(make_org, make_client)
    r = await auditor.get("/AuditEvent/$export", headers={"Accept": "application/fhir+ndjson",
                                                         "Prefer": "respond-async"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+ndjson")  # synchronous
    assert_outcome(await auditor.get("/AuditEvent", headers={"Accept": "application/fhir+ndjson"}), 406)
    statement = (await auditor.get("/metadata")).json()
    entry = next(e for e in statement["rest"][0]["resource"] if e["type"] == "AuditEvent")
    assert [op["definition"] for op in entry["operation"]] == [
        "https://gbv-exchange.org/fhir/OperationDefinition/audit-export"]  # not the Bulk Data export


async def test_the_capability_statement_lists_audit_event(client):
    statement = (await client.get("/metadata")).json()
    audit = next(r for r in statement["rest"][0]["resource"] if r["type"] == "AuditEvent")
    assert [i["code"] for i in audit["interaction"]] == ["read", "search-type"]
    assert {"date", "agent", "entity", "action", "outcome"} <= {p["name"] for p in audit["searchParam"]}


async def test_searches_of_one_shape_each_find_their_own_events(app, make_org, make_client, exchange):
    """Searches of one shape share one statement, compiled once (`review.run_query`): each still has its own values
    and its own caller's view."""
    ids = await referral_story(app, make_org, make_client)
    auditor = await _auditor(make_org, make_client)

    async def about(client, reference: str) -> dict:  # noqa: ANN001
        return (await client.get("/AuditEvent", params={"entity": reference, "_count": "50"})).json()

    by_request, by_patient = await about(auditor, f"ServiceRequest/{ids['sr']}"), await about(
        auditor, f"Patient/{ids['patient']}")
    for found, reference in ((by_request, f"ServiceRequest/{ids['sr']}"), (by_patient, f"Patient/{ids['patient']}")):
        assert found["total"] == len(found["entry"]) > 0
        assert all(reference in {"/".join(e["what"]["reference"].split("/")[:2]) for e in x["resource"]["entity"]
                                 if "reference" in e.get("what", {})} for x in found["entry"])
    assert _ids(by_request) != _ids(by_patient)
    shelter = await make_client(ids["shelter"], scopes=AUDIT)
    other = await make_client(ids["other"], scopes=AUDIT)
    seen = await about(shelter, f"ServiceRequest/{ids['sr']}")
    assert seen["total"] > 0
    assert (await about(other, f"ServiceRequest/{ids['sr']}"))["total"] == 0
    assert _ids(await about(shelter, f"ServiceRequest/{ids['sr']}")) == _ids(seen)
    paged = (await auditor.get("/AuditEvent", params={"entity": f"ServiceRequest/{ids['sr']}", "_count": "2",
                                                      "_offset": "2"})).json()
    assert paged["total"] == by_request["total"] and _ids(paged) == _ids(by_request)[2:4]
