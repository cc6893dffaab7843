"""GET /stats/referrals through HTTP with real tokens: counts, rates, medians, reasons, suppression, who may ask, bad
input, and that every request is in the exchange log."""
from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from .conftest import ACKNOWLEDGEMENT_DUE, CONSENT_WITHDRAWN, FEB, JAN, OUTCOME, STATS, declined

PERIOD = {"start": "2026-01", "end": "2026-02"}


@pytest.fixture
async def auditor(make_client, referrals):  # noqa: ANN001
    return await make_client(referrals.ids["other"], role="auditor",
                             scopes="system/AuditEvent.rs system/MeasureReport.rs")


async def test_a_small_cell_shows_as_below_five_and_no_total_gives_it_away(referrals, auditor, two_months):
    r = await auditor.get(STATS, params={"by": "month", **PERIOD})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["period"] == {"start": "2026-01-01", "end": "2026-02-28"}
    assert report["threshold"] == 5 and report["complete"] is True
    jan, feb = report["rows"]
    assert (jan["category"], feb["category"]) == ("2026-01", "2026-02")
    assert jan["declined"] == "<5"
    # the row total (13) and the column total (12) are shown; the cells that would let a reader subtract are not
    assert jan["referrals"] == 13 and report["total"]["declined"] == 12
    assert jan["accepted"] == "suppressed" and feb["declined"] == "suppressed" and feb["accepted"] == "suppressed"
    assert report["total"]["referrals"] == 34 and report["total"]["accepted"] == 22
    assert jan["acceptance_rate"] is None and feb["acceptance_rate"] is None  # their counts are hidden
    assert report["total"]["acceptance_rate"] == round(22 / 34, 3)
    assert jan["median_hours"]["acknowledge"] == 2.0 and feb["median_hours"]["decide"] == 4.0
    assert report["total"]["median_hours"] == {"acknowledge": 4.0, "decide": 4.0, "complete": None}
    declined = report["reasons"]["declined"]
    assert [(d["code"], d["label"], d["total"], d["by"]["2026-01"]) for d in declined] == [
        (f"{OUTCOME}|no-capacity", "No capacity", 12, "<5")]
    assert declined[0]["by"]["2026-02"] == "suppressed"
    assert "no room tonight" not in r.text  # counted by its code, the words never shown


async def test_decline_and_failure_reasons_are_counted_by_code_with_the_codes_display(referrals, auditor):
    for i in range(6):
        await referrals.answered(JAN + timedelta(minutes=i), "accepted", timedelta(hours=1))
    for i, code in enumerate(["no-capacity"] * 6 + ["survivor-declined"] * 5):
        task = await referrals.send(JAN + timedelta(minutes=10 + i))
        await referrals.move(task, JAN + timedelta(hours=1, minutes=i), "rejected", declined(code))
    for i in range(5):
        task = await referrals.send(JAN + timedelta(minutes=30 + i))
        await referrals.move(task, JAN + timedelta(hours=1, minutes=30 + i), "accepted")
        await referrals.move(task, JAN + timedelta(hours=5, minutes=i), "failed", declined("lost-contact", "gone"))
    r = await auditor.get(STATS, params={"by": "month", "start": "2026-01", "end": "2026-01"})
    assert r.status_code == 200, r.text
    reasons = r.json()["reasons"]
    assert [(d["code"], d["label"], d["total"]) for d in reasons["declined"]] == [
        (f"{OUTCOME}|no-capacity", "No capacity", 6), (f"{OUTCOME}|survivor-declined", "Declined by the survivor", 5)]
    assert [(d["code"], d["label"], d["total"]) for d in reasons["failed"]] == [
        (f"{OUTCOME}|lost-contact", "Lost contact with her", 5)]
    assert reasons["cancelled"] == []


async def test_rows_are_shown_whole_when_no_cell_is_small_and_reasons_are_coded_only_from_published_codes(
        referrals, auditor):
    for i in range(6):
        await referrals.answered(JAN + timedelta(minutes=i), "accepted", timedelta(hours=1))
    for i in range(5):
        task = await referrals.send(JAN + timedelta(minutes=10 + i))
        reason = CONSENT_WITHDRAWN if i < 3 else {"coding": [{"system": "urn:example:local", "code": "Fatima"}]}
        await referrals.move(task, JAN + timedelta(minutes=30 + i), "cancelled", reason)
    for i in range(5):
        await referrals.send(JAN + timedelta(minutes=40 + i), priority="routine")
    r = await auditor.get(STATS, params={"by": "priority", **PERIOD})
    assert r.status_code == 200, r.text
    report = r.json()
    routine, urgent = report["rows"]
    assert (routine["category"], routine["referrals"], routine["awaiting"]) == ("routine", 5, 5)
    assert (urgent["category"], urgent["referrals"], urgent["accepted"]) == ("urgent", 11, 6)
    assert report["total"]["referrals"] == 16 and report["total"]["cancelled-before-decision"] == 5
    assert urgent["acceptance_rate"] == 1.0 and routine["acceptance_rate"] is None  # nothing decided yet
    codes = {c["code"]: c["total"] for c in report["reasons"]["cancelled"]}
    assert codes == {"https://gbv-exchange.org/fhir/CodeSystem/gbv-referral-codes|consent-withdrawn": "<5",
                     "other": "<5"}
    assert "Fatima" not in r.text  # an unpublished code is "other", never echoed


async def test_partners_may_not_ask_for_statistics(referrals, make_client):
    partner = await make_client(referrals.ids["hotline"], role="partner", scopes="system/*.cruds")
    r = await partner.get(STATS)
    assert r.status_code == 403
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_an_auditor_needs_a_measure_report_scope(referrals, make_client):
    auditor = await make_client(referrals.ids["other"], role="auditor", scopes="system/AuditEvent.rs")
    r = await auditor.get(STATS)
    assert r.status_code == 403
    assert "MeasureReport" in r.json()["issue"][0]["diagnostics"]


async def test_no_token_is_401(referrals, app):  # noqa: ANN001
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080") as raw:
        r = await raw.get("/stats/referrals")
    assert r.status_code == 401


@pytest.mark.parametrize("params,expression", [
    ({"by": "survivor-name"}, "by"),
    ({"start": "last-tuesday"}, "start"),
    ({"end": "2026-13"}, "end"),
    ({"start": "2026-03", "end": "2026-01"}, "start"),
    ({"start": "2026-01-02", "end": "2026-01"}, "start"),  # whole months only: no differencing by days
    ({"start": "2026-01", "end": "2026-01-30"}, "end"),
    ({"name": "Fatima"}, None),
])
async def test_bad_parameters_are_400_naming_the_parameter_never_the_value(referrals, auditor, params, expression):
    r = await auditor.get(STATS, params=params)
    assert r.status_code == 400
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue.get("expression", [None]) == [expression]
    for value in params.values():
        if value not in ("by", "start", "end"):
            assert value not in r.text


async def test_every_statistics_request_is_in_the_exchange_log(referrals, auditor):
    assert (await auditor.get(STATS, params={"by": "area", **PERIOD})).status_code == 200
    assert (await auditor.get(STATS, params={"by": "nonsense"})).status_code == 400
    r = await auditor.get("/AuditEvent", params={"subtype": "operation", "_sort": "date"})
    assert r.status_code == 200, r.text
    events = [e["resource"] for e in r.json().get("entry", [])]
    ours = [e for e in events if e["agent"][0]["who"]["reference"] == f"Organization/{referrals.ids['other']}"]
    assert [e["outcome"] for e in ours] == ["0", "4"]
    query = next(x for x in ours[0]["entity"] if x.get("query"))["query"]
    assert base64.b64decode(query).decode() == "MeasureReport?by=area&start=2026-01-01&end=2026-02-28"


async def test_the_coordinating_organisations_coordinator_may_ask_and_another_coordinator_may_not(
        referrals, make_client, exchange):  # noqa: ANN001
    exchange.settings.coordinating_organization = referrals.ids["other"]
    ours = await make_client(referrals.ids["other"], role="coordinator", scopes="system/MeasureReport.rs")
    theirs = await make_client(referrals.ids["legal"], role="coordinator", scopes="system/MeasureReport.rs")
    assert (await ours.get(STATS, params=PERIOD)).status_code == 200
    r = await theirs.get(STATS, params=PERIOD)
    assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"


async def test_an_admin_may_not_ask_for_statistics(referrals, make_client):
    admin = await make_client(referrals.ids["other"], role="admin", scopes="system/*.cruds")
    assert (await admin.get(STATS)).status_code == 403


async def test_the_share_with_no_answer_by_the_acknowledgement_deadline(referrals, auditor):
    """Ten referrals due for an answer within a day: five answered in time, three late, two never."""
    for i, answer in enumerate([timedelta(hours=2)] * 5 + [timedelta(hours=30)] * 3 + [None] * 2):
        sent = JAN + timedelta(minutes=i)
        task = await referrals.send(sent)
        due = (sent + timedelta(days=1)).isoformat().replace("+00:00", "Z")
        await referrals.move(task, sent + timedelta(seconds=1), "requested",
                             extension=[{"url": ACKNOWLEDGEMENT_DUE, "valueDateTime": due}])
        if answer is not None:
            await referrals.move(task, sent + answer, "received")
    r = await auditor.get(STATS, params={"by": "month", **PERIOD})
    assert r.status_code == 200, r.text
    total = r.json()["total"]
    assert (total["deadline-passed"], total["no-answer-by-deadline"]) == (10, 5)
    assert total["no_answer_by_deadline_share"] == 0.5
    assert total["awaiting"] == 10 and total["median_hours"]["acknowledge"] == 2.0


async def test_organisations_below_the_deployments_size_are_not_named(referrals, auditor, exchange):
    for i in range(6):
        await referrals.answered(JAN + timedelta(minutes=i), "accepted", timedelta(hours=1))
    r = await auditor.get(STATS, params={"by": "organization", **PERIOD})
    assert r.status_code == 200, r.text
    assert [(row["category"], row["referrals"]) for row in r.json()["rows"]] == [("other", 6)]
    assert r.json()["rows"][0]["label"] == "other organisations (each fewer than 20 referrals)"
    assert "Safe Haven" not in r.text and referrals.ids["shelter"] not in r.text
    exchange.settings.stats_organization_min_referrals = 6
    r = await auditor.get(STATS, params={"by": "organization", **PERIOD})
    assert [(row["category"], row["label"]) for row in r.json()["rows"]] == \
        [(referrals.ids["shelter"], "Safe Haven Shelter")]


async def test_the_area_is_the_one_the_receiving_service_covers(referrals, auditor, client):
    r = await client.post("/Location", json={"resourceType": "Location", "name": "Eastern governorate",
                                             "mode": "kind"})
    assert r.status_code == 201, r.text
    service = (await client.get(f"/HealthcareService/{referrals.ids['svc-shelter']}")).json()
    service["coverageArea"] = [{"reference": f"Location/{r.json()['id']}"}]
    assert (await client.put(f"/HealthcareService/{service['id']}", json=service)).status_code == 200
    for i in range(5):
        await referrals.answered(JAN + timedelta(minutes=i), "accepted", timedelta(hours=1))
    found = (await auditor.get(STATS, params={"by": "area", **PERIOD})).json()
    assert [(row["label"], row["referrals"], row["accepted"]) for row in found["rows"]] == \
        [("Eastern governorate", 5, 5)]
