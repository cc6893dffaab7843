"""One BALP-shaped AuditEvent per interaction, with the right agent, entity and outcome, and no survivor data."""
from __future__ import annotations

import base64
import hashlib

from tests.audit.conftest import audit_rows, query_of, references, subtypes, whole_log_text
from tests.audit.story import CASE_CODE, FAMILY, NAME, PHONE, referral_story
from tests.fhir_checks import assert_valid

def _find(events: list[dict], subtype: str, reference_prefix: str | None = None, outcome: str = "0") -> dict:
    for event in events:
        if subtypes(event)[0] == subtype and event["outcome"] == outcome and (
                reference_prefix is None or any(r.startswith(reference_prefix) for r in references(event))):
            return event
    raise AssertionError(f"no AuditEvent {subtype} {reference_prefix} {outcome}")


def _agent_org(event: dict) -> str | None:
    return event["agent"][0]["who"].get("reference")


async def test_every_interaction_has_an_audit_event_with_agent_entity_and_outcome(app, make_org, make_client,
                                                                                 exchange):
    ids = await referral_story(app, make_org, make_client)
    events = await audit_rows(exchange)
    hotline = f"Organization/{ids['hotline']}"
    for event in events:
        assert_valid({k: v for k, v in event.items() if k != "_seq"})
        assert event["type"]["code"] in ("rest", "110114")
        assert event["source"]["site"] == "http://127.0.0.1:8080"

    create = _find(events, "create", f"Patient/{ids['patient']}/_history/1")
    assert create["action"] == "C" and _agent_org(create) == hotline
    assert create["agent"][1]["who"]["identifier"]["value"] == ids["client"]
    assert create["agent"][1]["network"] == {"address": "127.0.0.1", "type": "2"}
    assert create["agent"][0]["policy"][0].startswith("urn:gbv-exchange:token:")
    assert create["entity"][0]["role"]["code"] == "1"  # the Patient role
    read = _find(events, "read", f"ServiceRequest/{ids['sr']}/_history/1")
    assert read["action"] == "R" and _agent_org(read) == hotline
    request_id = read["entity"][-1]["what"]["identifier"]["value"]  # sent as free text: kept only as a hash
    assert request_id == "sha256:" + hashlib.sha256(f"{NAME} {FAMILY}".encode()).hexdigest()
    update = _find(events, "update", f"ServiceRequest/{ids['sr']}/_history/2")
    assert update["action"] == "U"
    vread = _find(events, "vread", f"ServiceRequest/{ids['sr']}/_history/1")
    assert vread["action"] == "R"
    history = _find(events, "history-instance", f"ServiceRequest/{ids['sr']}")
    assert history["action"] == "R"
    delete = _find(events, "delete", f"DocumentReference/{ids['doc']}")
    assert delete["action"] == "D"

    searches = [e for e in events if subtypes(e)[0] == "search-type" and query_of(e).startswith("Patient?")]
    assert len(searches) == 1, "one AuditEvent per search"
    search = searches[0]
    assert search["action"] == "E" and references(search) == [f"Patient/{ids['patient']}/_history/1"]
    # the identifier (case code) is dropped, the id kept; "name" is not searchable here, so ignored and unrecorded
    assert query_of(search) == f"Patient?identifier=&_id={ids['patient']}"

    in_transaction = _find(events, "create", f"Consent/{ids['consent']}")
    assert subtypes(in_transaction) == ["create", "transaction"]

    not_found = _find(events, "read", f"ServiceRequest/{ids['sr']}", outcome="4")
    assert not_found["outcomeDesc"] == "404 NotFound"
    assert _agent_org(not_found) == f"Organization/{ids['other']}"
    denied = [e for e in events if e.get("outcomeDesc") == "403 Forbidden"]
    assert len(denied) == 1 and references(denied[0]) == [f"ServiceRequest/{ids['sr']}"]

    issued = [e for e in events if e["type"]["code"] == "110114" and e["outcome"] == "0"]
    assert len(issued) == 3 and all(subtypes(e) == ["110122"] for e in issued)
    assert _agent_org(issued[0]) == hotline and issued[0]["agent"][1]["who"]["identifier"]["value"] == ids["client"]
    assert issued[0]["agent"][0]["policy"] == create["agent"][0]["policy"]  # the token then used
    refused = [e for e in events if e["type"]["code"] == "110114" and e["outcome"] == "4"]
    assert len(refused) == 1 and refused[0]["outcomeDesc"] == "401 Unauthorized"
    assert refused[0]["agent"][1]["network"]["address"] == "10.9.9.8"
    assert _agent_org(refused[0]) is None


async def test_the_whole_log_holds_no_survivor_data(app, make_org, make_client, exchange):
    await referral_story(app, make_org, make_client)
    log = await whole_log_text(exchange)
    assert "Patient?" in log  # the decoded queries are part of what is searched
    for secret in (NAME, FAMILY, PHONE, "70 123", "BLUE-HERON", "18:00", CASE_CODE):
        assert secret not in log, secret
        assert base64.b64encode(secret.encode()).decode()[:8] not in log


async def test_a_search_by_identifier_in_a_transaction_is_redacted_too(client, exchange):
    r = await client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": f"Patient?identifier={CASE_CODE}&gender=female"}}]})
    assert r.status_code == 200, r.text
    events = await audit_rows(exchange)
    search = next(e for e in events if subtypes(e)[0] == "search-type")
    assert subtypes(search) == ["search-type", "transaction"]
    assert query_of(search) == "Patient?identifier=&gender="
    assert CASE_CODE not in await whole_log_text(exchange)
