"""Statistics as a FHIR R4 MeasureReport: valid R4 (the independent validator of tests/r4_validator), the same
suppression as the JSON report, the Measure served from conformance/, and the same access rules."""
from __future__ import annotations

import orjson
import pytest

from exchange.stats.measure import DATA_ABSENT, EXT_SUPPRESSED
from tests.conformance.test_r4_validity import FILES, validate

from .conftest import OUTCOME, STATS

EVALUATE = "/Measure/referral-outcomes/$evaluate-measure"
PERIOD = {"periodStart": "2026-01", "periodEnd": "2026-02"}


@pytest.fixture
async def auditor(make_client, referrals):  # noqa: ANN001
    return await make_client(referrals.ids["other"], role="auditor", scopes="system/MeasureReport.rs")


def _group(report: dict, code: str) -> dict:
    return next(g for g in report["group"] if g["code"]["coding"][0]["code"] == code)


def _stratum(group: dict, breakdown: str, text: str) -> dict:
    stratifier = next(s for s in group["stratifier"] if s["code"][0]["coding"][0]["code"] == breakdown)
    return next(s for s in stratifier["stratum"] if s["value"]["text"] == text)


async def test_the_measure_report_is_valid_r4_and_masks_what_the_json_report_hides(auditor, two_months, tmp_path):
    r = await auditor.get(EVALUATE, params=PERIOD)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    report = r.json()
    assert (report["resourceType"], report["status"], report["type"]) == ("MeasureReport", "complete", "summary")
    assert report["measure"] == "https://gbv-exchange.org/fhir/Measure/referral-outcomes"
    assert report["period"] == {"start": "2026-01-01", "end": "2026-02-28"}
    path = tmp_path / "MeasureReport-stats.json"
    path.write_bytes(r.content)
    assert validate(*FILES, path) == []

    declined = _group(report, "declined")
    assert declined["population"][0]["count"] == 12
    jan = _stratum(declined, "month", "2026-01")["population"][0]
    assert "count" not in jan
    assert jan["_count"]["extension"] == [{"url": DATA_ABSENT, "valueCode": "masked"},
                                          {"url": EXT_SUPPRESSED, "valueCode": "below-threshold"}]
    hidden = _stratum(_group(report, "accepted"), "month", "2026-01")["population"][0]
    assert hidden["_count"]["extension"][1]["valueCode"] == "complementary"
    json_report = (await auditor.get(STATS, params={"by": "month", "start": "2026-01", "end": "2026-02"})).json()
    assert json_report["rows"][0]["declined"] == "<5" and json_report["rows"][0]["accepted"] == "suppressed"
    rate = _group(report, "acceptance-rate")
    assert rate["measureScore"] == {"value": round(22 / 34, 3)}
    assert "measureScore" not in _stratum(rate, "month", "2026-01")
    reason = _group(report, "declined-reason")["stratifier"][0]["stratum"]
    assert [(st["value"], st["population"][0]["count"]) for st in reason] == [
        ({"coding": [{"system": OUTCOME, "code": "no-capacity"}], "text": "No capacity"}, 12)]  # by code, its display
    assert "no room tonight" not in r.text
    hours = _group(report, "time-to-acknowledge")
    assert hours["measureScore"] == {"value": 4.0, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}

    broken = orjson.loads(r.content)
    _stratum(_group(broken, "declined"), "month", "2026-01")["population"][0]["count"] = "<5"
    path.write_bytes(orjson.dumps(broken))
    assert {i["rule"] for i in validate(*FILES, path)} == {"r4-validate"}  # the validator does look


async def test_the_measure_is_served_and_the_operation_is_in_the_capability_statement(client):
    r = await client.get("/Measure/referral-outcomes")
    assert r.status_code == 200 and r.json()["url"] == "https://gbv-exchange.org/fhir/Measure/referral-outcomes"
    statement = (await client.get("/metadata")).json()
    measure = next(e for e in statement["rest"][0]["resource"] if e["type"] == "Measure")
    assert measure["operation"][0]["definition"] == \
        "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure"


async def test_partners_may_not_evaluate_the_measure_and_a_subject_report_is_refused(referrals, make_client,
                                                                                    auditor):
    partner = await make_client(referrals.ids["hotline"], role="partner", scopes="system/*.cruds")
    assert (await partner.get(EVALUATE, params=PERIOD)).status_code == 403
    r = await auditor.get(EVALUATE, params={"reportType": "subject"})
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["reportType"]
    r = await auditor.get(EVALUATE, params={"periodStart": "yesterday"})
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["periodStart"]
    assert "yesterday" not in r.text
