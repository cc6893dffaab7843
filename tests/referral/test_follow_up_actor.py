"""Issue 11 class 9: when the exchange writes as itself after a partner's request (a claim narrows the request's
performers, a consent withdrawal cancels Tasks), its AuditEvent names the exchange, the triggering request's event
names the partner, and both carry the same request id (the link from the follow-up to its cause)."""
from __future__ import annotations

from tests.audit.conftest import audit_rows

from . import world
from .conftest import change_task


def _events_about(rows: list[dict], reference: str, subtype: str) -> list[dict]:
    return [r for r in rows if r["subtype"][0]["code"] == subtype and any(
        (e.get("what") or {}).get("reference", "").startswith(reference + "/") for e in r.get("entity", []))]


def _actor(event: dict) -> dict:
    return event["agent"][0]


def _request_id(event: dict) -> str:
    return next(e["what"]["identifier"]["value"] for e in event["entity"]
                if "identifier" in (e.get("what") or {}))


async def test_the_narrowing_after_a_claim_is_recorded_as_the_exchange(http, as_, ids, make_referral, exchange):
    ids["shelter2"] = (await http.post("/Organization", json={"resourceType": "Organization",
                                                               "name": "Second shelter"})).json()["id"]
    assert (await http.post("/HealthcareService", json=world.service(ids["shelter2"], ["safety-shelter"]))
            ).status_code == 201
    await as_.add(ids["shelter2"])
    ref = await make_referral(to_keys=("shelter", "shelter2"), owner=None)
    r = await change_task(http, as_(ids["shelter"]), ref["Task"], if_match=True, status="accepted",
                          owner={"reference": f"Organization/{ids['shelter']}"})
    assert r.status_code == 200, r.text
    rows = await audit_rows(exchange)
    [claim] = _events_about(rows, f"Task/{ref['Task']}", "update")
    [narrowing] = _events_about(rows, f"ServiceRequest/{ref['ServiceRequest']}", "update")
    assert _actor(claim)["who"] == {"reference": f"Organization/{ids['shelter']}"}
    assert _actor(narrowing)["who"]["identifier"]["value"] == "exchange"
    assert _actor(narrowing)["role"][0]["coding"][0]["code"] == "system"
    assert _request_id(narrowing) == _request_id(claim)


async def test_tasks_cancelled_on_withdrawal_are_recorded_as_the_exchange(http, as_, ids, make_referral, exchange):
    ref = await make_referral()
    hotline = as_(ids["hotline"])
    consent = (await http.get(f"/Consent/{ref['Consent']}", headers=hotline)).json()
    r = await http.put(f"/Consent/{ref['Consent']}", json={**consent, "status": "inactive"}, headers=hotline)
    assert r.status_code == 200, r.text
    rows = await audit_rows(exchange)
    [withdrawal] = _events_about(rows, f"Consent/{ref['Consent']}", "update")
    [cancellation] = _events_about(rows, f"Task/{ref['Task']}", "update")
    assert _actor(withdrawal)["who"] == {"reference": f"Organization/{ids['hotline']}"}
    assert _actor(cancellation)["who"]["identifier"]["value"] == "exchange"
    assert _request_id(cancellation) == _request_id(withdrawal)


async def test_the_overdue_mark_is_recorded_as_the_exchange(http, as_, ids, make_referral, exchange):
    from datetime import timedelta

    from exchange.referral.overdue import sweep_overdue

    from .conftest import deadlines_of

    ref = await make_referral()
    acknowledge, _ = await deadlines_of(http, ref["Task"])
    assert await sweep_overdue(exchange, now=acknowledge + timedelta(minutes=1)) == 1
    [mark] = _events_about(await audit_rows(exchange), f"Task/{ref['Task']}", "update")
    assert _actor(mark)["who"]["identifier"]["value"] == "exchange"
    assert _actor(mark)["role"][0]["coding"][0]["code"] == "system"
