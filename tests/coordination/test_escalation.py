"""Reminders and escalation at a simulated clock, and what the coordinating organisation sees (issue 14 item 3)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from exchange.referral import codes, deadlines
from exchange.referral.escalation import sweep_referrals
from exchange.web.tables import web_alert
from tests.audit.conftest import audit_rows
from tests.conftest import SYSTEM_HEADER
from tests.referral import world
from tests.referral.conftest import change_task, deadlines_of, rule_of

from .conftest import SENT

ROOT = "http://127.0.0.1:8080"
LIST = f"{ROOT}/coordination/referrals"
MINUTE = timedelta(minutes=1)


async def _alerts(exchange) -> list[tuple[str, str]]:  # noqa: ANN001
    async with exchange.db.engine.connect() as conn:
        rows = (await conn.execute(select(web_alert.c.organization_id, web_alert.c.kind)
                                   .order_by(web_alert.c.id))).all()
    return [(r.organization_id, r.kind) for r in rows]


def _updates_of(rows: list[dict], task_id: str) -> list[dict]:
    return [r for r in rows if r["subtype"][0]["code"] == "update" and any(
        (e.get("what") or {}).get("reference", "").startswith(f"Task/{task_id}/") for e in r.get("entity", []))]


async def _escalate(http, exchange, clock, task_id: str) -> None:  # noqa: ANN001
    """Past the acknowledgement deadline (marked overdue), then past the escalation delay (escalated)."""
    acknowledge, _ = await deadlines_of(http, task_id)
    delay = timedelta(hours=exchange.settings.referral_escalation_hours)
    clock.set(acknowledge + MINUTE)
    assert await sweep_referrals(exchange) == (1, 0)
    clock.set(acknowledge + delay + MINUTE)
    assert await sweep_referrals(exchange) == (0, 1)


async def test_a_late_referral_reminds_the_owner_tells_the_requester_then_goes_to_the_coordinator(
        http, as_, ids, make_referral, exchange, coordinator, clock):
    ref = await make_referral()
    before = await _alerts(exchange)
    assert (await coordinator.get(LIST)).json()["referrals"] == []
    acknowledge, action = await deadlines_of(http, ref["Task"])
    clock.set(acknowledge - MINUTE)
    assert await sweep_referrals(exchange) == (0, 0)
    clock.set(acknowledge + MINUTE)
    assert await sweep_referrals(exchange) == (1, 0)
    task = (await http.get(f"/Task/{ref['Task']}", headers=as_(ids["hotline"]))).json()
    assert codes.OVERDUE in codes.codes_in(task["businessStatus"], codes.REFERRAL_CODES)
    assert not [e for e in task["extension"] if e["url"] == codes.EXT_ESCALATION]
    assert (await _alerts(exchange))[len(before):] == [(ids["shelter"], "overdue"), (ids["hotline"], "overdue")]
    assert (await coordinator.get(LIST)).json()["referrals"] == []  # reminded, not yet escalated

    delay = timedelta(hours=exchange.settings.referral_escalation_hours)
    clock.set(acknowledge + delay - MINUTE)
    assert await sweep_referrals(exchange) == (0, 0)
    clock.set(acknowledge + delay + MINUTE)
    assert await sweep_referrals(exchange) == (0, 1)
    assert await sweep_referrals(exchange) == (0, 0)  # once
    assert (await _alerts(exchange))[-1] == (ids["other"], "escalated")
    found = (await http.get("/Task", params={"escalated": "true"}, headers=as_(ids["hotline"]))).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [ref["Task"]]
    updates = _updates_of(await audit_rows(exchange), ref["Task"])
    assert len(updates) == 2  # the mark and the escalation, each by the exchange itself
    assert all(u["agent"][0]["who"]["identifier"]["value"] == "exchange" for u in updates)

    clock.set(acknowledge + delay + timedelta(hours=2, minutes=1))
    r = await coordinator.get(LIST)
    assert r.status_code == 200, r.text
    [seen] = r.json()["referrals"]
    assert seen["task"] == f"Task/{ref['Task']}" and seen["status"] == "requested" and seen["overdue"] is True
    assert seen["serviceType"] == "safety-shelter" and seen["priority"] == "urgent" and seen["reroute"] is None
    assert seen["requester"] == {"organization": f"Organization/{ids['hotline']}", "name": "Amal Hotline"}
    assert seen["owner"] == {"organization": f"Organization/{ids['shelter']}", "name": "Safe Haven Shelter"}
    assert seen["deadlines"] == dict(zip(("acknowledge", "action"), deadlines.stored_of(task)))
    assert [(s["step"], s["ageHours"]) for s in seen["steps"]] == [("sent", 50.0), ("overdue", 26.0),
                                                                    ("escalated", 2.0)]
    assert seen["steps"][0]["at"] == "2026-11-24T09:00:00.000Z" and action > acknowledge == SENT + timedelta(
        hours=24)


async def test_the_coordinator_sees_nothing_about_her(http, as_, ids, make_referral, exchange, coordinator, clock):
    ref = await make_referral(("clinic",), code="clinical-management-of-rape",
                              categories=("referral", "identity", "incident", "health"),
                              patient_extra={"name": [{"text": "Nadia K."}]},
                              request_extra={"note": [{"text": "She is staying with her sister"}],
                                             "reasonCode": [{"text": "Rape"}]})
    assert (await change_task(http, as_(ids["hotline"]), ref["Task"],
                              note=[{"text": "Call the sister first"}], description="urgent case")).status_code == 200
    await _escalate(http, exchange, clock, ref["Task"])
    r = await coordinator.get(LIST)
    assert r.status_code == 200
    raw = r.text
    for secret in (ref["Patient"], ref["Consent"], ref["ServiceRequest"], "Patient", "Consent", "HTL-",
                   world.CODE_WORD, world.SAFE_PHONE, "Nadia", "sister", "Rape", "urgent case", "1994"):
        assert secret not in raw, secret
    [seen] = r.json()["referrals"]
    assert set(seen) == {"task", "status", "overdue", "serviceType", "priority", "area", "requester", "owner",
                         "deadlines", "steps", "reroute"}
    assert seen["serviceType"] == "clinical-management-of-rape" and seen["priority"] == "urgent"
    # and over FHIR the coordinator reads no referral at all
    for path in (f"/Task/{ref['Task']}", f"/Patient/{ref['Patient']}", "/Task"):
        assert (await coordinator.get(path)).status_code == 403


@pytest.mark.parametrize("who", ["partner", "auditor", "other-coordinator", "no-token"])
async def test_only_the_coordinating_organisations_coordinator_may_look(http, ids, make_referral, exchange,
                                                                     coordinator, make_client, clock, who):
    ref = await make_referral()
    await _escalate(http, exchange, clock, ref["Task"])
    if who == "no-token":
        r = await http.get(LIST, headers={SYSTEM_HEADER: "0"})
        assert r.status_code == 401 and ref["Task"] not in r.text
        return
    role, org = {"partner": ("partner", ids["hotline"]), "auditor": ("auditor", ids["other"]),
                 "other-coordinator": ("coordinator", ids["legal"])}[who]
    client = await make_client(org, role=role, scopes="system/*.rs")
    r = await client.get(LIST)
    assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"
    assert ref["Task"] not in r.text
    r = await client.post(f"{LIST}/{ref['Task']}/reroute", json={"owner": f"Organization/{ids['legal']}"})
    assert r.status_code == 403 and ref["Task"] not in r.text


async def test_a_partner_cannot_forge_or_drop_the_escalation(http, as_, ids, make_referral, exchange, coordinator,
                                                             clock):
    ref = await make_referral()
    forged = {"url": codes.EXT_ESCALATION, "extension": [{"url": "escalated", "valueDateTime": "2026-11-25T00:00:00Z"}]}
    task = (await http.get(f"/Task/{ref['Task']}", headers=as_(ids["hotline"]))).json()
    r = await change_task(http, as_(ids["hotline"]), ref["Task"], extension=task["extension"] + [forged])
    assert r.status_code == 422 and rule_of(r) == "escalation-set-by-exchange"
    await _escalate(http, exchange, clock, ref["Task"])
    r = await change_task(http, as_(ids["hotline"]), ref["Task"], extension=None, description="left out")
    assert r.status_code == 200, r.text
    assert [e for e in r.json()["extension"] if e["url"] == codes.EXT_ESCALATION]  # kept
    assert len((await coordinator.get(LIST)).json()["referrals"]) == 1


async def test_without_a_coordinating_organisation_nothing_is_escalated(http, make_referral, exchange, clock):
    ref = await make_referral()
    acknowledge, _ = await deadlines_of(http, ref["Task"])
    assert exchange.settings.coordinating_organization is None
    clock.set(acknowledge + timedelta(days=30))
    assert await sweep_referrals(exchange) == (1, 0)
    assert await sweep_referrals(exchange) == (0, 0)
