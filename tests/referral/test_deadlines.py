"""Deadlines by priority and service type: set by the exchange when a referral is sent, never by a partner, and
searchable (issue 14 item 2)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from exchange.fhir.definitions import TASK_ACKNOWLEDGEMENT_DUE, TASK_DEADLINE
from exchange.referral import codes
from exchange.settings import DeadlineRule, Settings
from exchange.store import clock as store_clock

from . import world
from .conftest import change_task, rule_of

SENT = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)  # the exchange's clock when the referral is sent


@pytest.fixture
def clock(monkeypatch):
    """The store's clock (exchange.store.clock.utcnow), held at SENT."""
    monkeypatch.setattr(store_clock, "utcnow", lambda: SENT)
    return SENT


def _z(moment: datetime) -> str:
    return store_clock.fhir_instant(moment)


def _deadlines(task: dict) -> tuple[str | None, str | None]:
    acknowledge = [e["valueDateTime"] for e in task.get("extension") or [] if e["url"] == codes.EXT_ACKNOWLEDGE_DUE]
    assert len(acknowledge) <= 1
    return (acknowledge[0] if acknowledge else None,
            ((task.get("restriction") or {}).get("period") or {}).get("end"))


async def _task(http, as_, ids, task_id: str) -> dict:  # noqa: ANN001
    r = await http.get(f"/Task/{task_id}", headers=as_(ids["hotline"]))
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("priority, acknowledge, action", [
    ("stat", 1, 24), ("asap", 4, 24), ("urgent", 24, 72), ("routine", 72, 14 * 24), (None, 72, 14 * 24)])
async def test_deadlines_follow_the_priority(http, as_, ids, make_referral, clock, priority, acknowledge, action):
    ref = await make_referral(request_extra={"priority": priority} if priority else {"priority": None})
    task = await _task(http, as_, ids, ref["Task"])
    assert _deadlines(task) == (_z(SENT + timedelta(hours=acknowledge)), _z(SENT + timedelta(hours=action)))
    assert task["meta"]["lastUpdated"] == _z(SENT)  # counted from when the exchange stored it, not authoredOn


async def test_clinical_management_of_rape_counts_from_the_incident(http, as_, ids, make_referral, clock):
    incident = SENT - timedelta(hours=30)
    ref = await make_referral(("clinic",), code="clinical-management-of-rape", categories=("referral", "incident"),
                              request_extra={"priority": "routine", "extension": [
                                  {"url": codes.EXT_INCIDENT_DATE, "valueDateTime": _z(incident)}]})
    task = await _task(http, as_, ids, ref["Task"])
    assert _deadlines(task) == (_z(SENT + timedelta(hours=1)), _z(incident + timedelta(hours=72)))
    without = await make_referral(("clinic",), code="clinical-management-of-rape")  # no incident date: from sending
    assert _deadlines(await _task(http, as_, ids, without["Task"])) == (
        _z(SENT + timedelta(hours=1)), _z(SENT + timedelta(hours=72)))
    long_ago = await make_referral(("clinic",), code="clinical-management-of-rape",
                                   categories=("referral", "incident"), request_extra={"extension": [
                                       {"url": codes.EXT_INCIDENT_DATE, "valueDate": "2026-11-01"}]})
    # past the 72 hours already: the action deadline is never before the hour to acknowledge it
    assert _deadlines(await _task(http, as_, ids, long_ago["Task"])) == (
        _z(SENT + timedelta(hours=1)), _z(SENT + timedelta(hours=1)))


async def test_the_incident_date_needs_her_consent_to_the_incident(http, make_referral):
    r = await make_referral(("clinic",), code="clinical-management-of-rape", expect=422, request_extra={
        "extension": [{"url": codes.EXT_INCIDENT_DATE, "valueDate": "2026-11-23"}]})
    assert rule_of(r) == "consent-coverage" and "incident" in r.text


async def test_the_table_is_the_deployments(http, as_, ids, make_referral, clock, exchange):
    exchange.settings.referral_deadlines = [
        DeadlineRule(service_type="safety-shelter", priority="urgent", acknowledge_hours=2, action_hours=12),
        DeadlineRule(acknowledge_hours=48, action_hours=96)]
    shelter = await make_referral()  # urgent, safety-shelter
    legal = await make_referral(("legal",), code="legal-aid")  # urgent, but not a shelter
    assert _deadlines(await _task(http, as_, ids, shelter["Task"])) == (
        _z(SENT + timedelta(hours=2)), _z(SENT + timedelta(hours=12)))
    assert _deadlines(await _task(http, as_, ids, legal["Task"])) == (
        _z(SENT + timedelta(hours=48)), _z(SENT + timedelta(hours=96)))


def test_the_table_is_configured_as_json_and_must_end_with_a_catch_all(monkeypatch, tmp_path):
    monkeypatch.setenv("EXCHANGE_REFERRAL_DEADLINES",
                       '[{"priority": "stat", "acknowledge_hours": 0.5, "action_hours": 6},'
                       ' {"acknowledge_hours": 24, "action_hours": 240}]')
    assert Settings(state_dir=tmp_path).referral_deadlines[0] == DeadlineRule(priority="stat", acknowledge_hours=0.5,
                                                                             action_hours=6)
    monkeypatch.setenv("EXCHANGE_REFERRAL_DEADLINES", '[{"priority": "stat", "acknowledge_hours": 1, '
                                                      '"action_hours": 24}]')
    with pytest.raises(ValidationError, match="must match every referral"):
        Settings(state_dir=tmp_path)
    monkeypatch.setenv("EXCHANGE_REFERRAL_DEADLINES", '[{"priority": "soon", "acknowledge_hours": 1, '
                                                      '"action_hours": 24}]')
    with pytest.raises(ValidationError):
        Settings(state_dir=tmp_path)


async def test_a_draft_gets_its_deadlines_when_it_is_sent(http, as_, ids, make_referral, monkeypatch):
    monkeypatch.setattr(store_clock, "utcnow", lambda: SENT)
    ref = await make_referral(task_status="draft")
    assert _deadlines(await _task(http, as_, ids, ref["Task"])) == (None, None)
    later = SENT + timedelta(days=2)
    monkeypatch.setattr(store_clock, "utcnow", lambda: later)
    assert (await change_task(http, as_(ids["hotline"]), ref["Task"], status="requested")).status_code == 200
    assert _deadlines(await _task(http, as_, ids, ref["Task"])) == (
        _z(later + timedelta(hours=24)), _z(later + timedelta(hours=72)))


async def test_a_partner_cannot_set_or_move_the_deadlines(http, as_, ids, make_referral, clock):
    hotline, shelter = as_(ids["hotline"]), as_(ids["shelter"])
    ref = await make_referral()
    stored = await _task(http, as_, ids, ref["Task"])
    far = "2027-06-01T00:00:00Z"
    r = await change_task(http, hotline, ref["Task"], restriction={"period": {"end": far}})
    assert r.status_code == 422 and rule_of(r) == "deadline-set-by-exchange", r.text
    assert r.json()["issue"][0]["expression"] == ["Task.restriction.period.end"] and far not in r.text
    r = await change_task(http, shelter, ref["Task"], restriction={"period": {"end": far}})  # not the owner's field
    assert r.status_code == 403 and rule_of(r) == "task-owner-fields", r.text
    r = await change_task(http, hotline, ref["Task"], extension=[{"url": codes.EXT_ACKNOWLEDGE_DUE,
                                                                  "valueDateTime": far}])
    assert r.status_code == 422 and rule_of(r) == "deadline-set-by-exchange"
    assert r.json()["issue"][0]["expression"] == ["Task.extension('acknowledgement-due')"]
    unchanged = await _task(http, as_, ids, ref["Task"])
    assert unchanged["meta"]["versionId"] == stored["meta"]["versionId"] and _deadlines(unchanged) == \
        _deadlines(stored)
    # sent back as stored: fine; left out: kept
    assert (await change_task(http, shelter, ref["Task"], status="received")).status_code == 200
    r = await change_task(http, hotline, ref["Task"], restriction=None, extension=None, description="Shelter")
    assert r.status_code == 200, r.text
    assert _deadlines(r.json()) == _deadlines(stored) == _deadlines(await _task(http, as_, ids, ref["Task"]))


async def test_a_new_task_with_its_own_deadline_is_refused(http, as_, ids):
    bundle = world.referral_bundle(ids, [f"Organization/{ids['shelter']}"])
    bundle["entry"][-1]["resource"]["restriction"] = {"period": {"end": "2027-01-01"}}
    r = await http.post("", json=bundle, headers=as_(ids["hotline"]))
    assert r.status_code == 422 and rule_of(r) == "deadline-set-by-exchange", r.text
    assert (await http.get("/Task", headers=as_(ids["hotline"]))).json()["total"] == 0  # nothing stored


async def test_tasks_are_found_by_their_deadlines(http, as_, ids, make_referral, clock):
    stat = await make_referral(request_extra={"priority": "stat"})
    routine = await make_referral(request_extra={"priority": "routine"})
    hotline = as_(ids["hotline"])

    async def found(**params) -> list[str]:  # noqa: ANN003
        r = await http.get("/Task", params=params, headers=hotline)
        assert r.status_code == 200, r.text
        return sorted(e["resource"]["id"] for e in r.json().get("entry", []))

    two_days = _z(SENT + timedelta(days=2))
    assert await found(deadline=f"lt{two_days}") == [stat["Task"]]
    assert await found(deadline=f"gt{two_days}") == [routine["Task"]]
    assert await found(**{"acknowledgement-due": f"le{_z(SENT + timedelta(hours=1))}"}) == [stat["Task"]]
    assert await found(**{"acknowledgement-due": f"gt{_z(SENT + timedelta(hours=1))}"}) == [routine["Task"]]
    assert await found(**{"acknowledgement-due": f"lt{_z(SENT)}"}) == []
    statement = (await http.get("/metadata")).json()
    task = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Task")
    published = {p["name"]: p.get("definition") for p in task["searchParam"]}
    assert published["deadline"] == TASK_DEADLINE and published["acknowledgement-due"] == TASK_ACKNOWLEDGEMENT_DUE
    for canonical in (TASK_DEADLINE, TASK_ACKNOWLEDGEMENT_DUE):
        r = await http.get(f"/SearchParameter/{canonical.rsplit('/', 1)[1]}", headers=hotline)
        assert r.status_code == 200 and r.json()["url"] == canonical and r.json()["type"] == "date"
    r = await http.get("/StructureDefinition/acknowledgement-due", headers=hotline)
    assert r.status_code == 200 and r.json()["url"] == codes.EXT_ACKNOWLEDGE_DUE
