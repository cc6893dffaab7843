"""Retention: closed referrals' survivor data is purged after the period; open referrals and the log stay."""
from __future__ import annotations

import asyncio
import json

from tests.audit.conftest import cli, whole_log_text
from tests.fhir_checks import organization, patient
from tests.referral import world

NAME = "Leila"


async def _referral(client, hotline: str, shelter: str, patient_id: str, status: str) -> dict:
    sr = await client.post("/ServiceRequest", json=world.service_request(
        f"Patient/{patient_id}", hotline, [f"Organization/{shelter}"], "safety-shelter", "safety-shelter", None,
        safe_contact=False, note=[{"text": "safe to call mornings"}]))
    assert sr.status_code == 201, sr.text
    t = await client.post("/Task", json=world.task(f"Patient/{patient_id}", f"ServiceRequest/{sr.json()['id']}",
                                                   hotline, f"Organization/{shelter}"))
    assert t.status_code == 201, t.text
    body = t.json()
    if status != "requested":
        body["status"] = status
        if status in ("rejected", "cancelled", "failed"):
            body["statusReason"] = world.reason("no-capacity")
        updated = await client.put(f"/Task/{body['id']}", json=body)
        assert updated.status_code == 200, updated.text
    return {"sr": sr.json()["id"], "task": body["id"]}


async def test_purge_removes_closed_referrals_content_and_keeps_the_log_verifiable(client, settings, exchange):
    hotline = (await client.post("/Organization", json=organization("Hotline"))).json()["id"]
    shelter = (await client.post("/Organization", json=organization("Shelter"))).json()["id"]
    closed_patient = (await client.post("/Patient", json=patient("C-1", name=[{"given": [NAME]}]))).json()["id"]
    shared_patient = (await client.post("/Patient", json=patient("C-2", name=[{"given": ["Noor"]}]))).json()["id"]
    closed = await _referral(client, hotline, shelter, closed_patient, "cancelled")
    consent = (await client.post("/Consent", json={
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "patient": {"reference": f"Patient/{closed_patient}"}})).json()["id"]
    closed_shared = await _referral(client, hotline, shelter, shared_patient, "cancelled")
    still_open = await _referral(client, hotline, shelter, shared_patient, "requested")
    url = settings.database_url

    nothing = await cli("audit", "purge", "--json", "--database-url", url)  # retention not configured: keep everything
    assert nothing.exit_code == 0 and json.loads(nothing.output)["purged"] == []

    dry = await cli("audit", "purge", "--json", "--dry-run", "--days", "0", "--database-url", url)
    report = json.loads(dry.output)
    assert sorted(report["closed_referrals"]) == sorted([f"Task/{closed['task']}", f"Task/{closed_shared['task']}"])
    assert set(report["purged"]) == {f"Task/{closed['task']}", f"ServiceRequest/{closed['sr']}",
                                     f"Patient/{closed_patient}", f"Task/{closed_shared['task']}",
                                     f"ServiceRequest/{closed_shared['sr']}", f"Consent/{consent}"}
    assert report["kept_for_open_referrals"] == [f"Patient/{shared_patient}"]
    assert (await client.get(f"/Patient/{closed_patient}")).status_code == 200  # a dry run changes nothing

    done = await cli("audit", "purge", "--json", "--days", "0", "--database-url", url)
    assert done.exit_code == 0 and set(json.loads(done.output)["purged"]) == set(report["purged"])
    assert (await client.get(f"/Patient/{closed_patient}")).status_code == 410
    for version in (1, 2):
        r = await client.get(f"/Task/{closed['task']}/_history/{version}")
        assert r.status_code == 200 and set(r.json()) == {"resourceType", "id", "meta"}
        assert r.json()["meta"]["tag"][0]["code"] == "purged"
    async with exchange.db.engine.connect() as conn:
        from sqlalchemy import text

        contents = (await conn.execute(text("SELECT content FROM resource_version"))).scalars().all()
        index_rows = (await conn.execute(text("SELECT count(*) FROM search_index WHERE resource_id = :i"),
                                         {"i": closed_patient})).scalar()
    assert not any(NAME in c or "C-1" in c for c in contents) and index_rows == 0
    assert (await client.get(f"/Patient/{shared_patient}")).status_code == 200
    assert (await client.get(f"/Task/{still_open['task']}")).status_code == 200
    found = (await client.get("/Patient", params={"identifier": "C-1"})).json()
    assert found["total"] == 0

    verified = await cli("audit", "verify", "--database-url", url)
    assert verified.exit_code == 0, verified.output
    purges = (await client.get("/AuditEvent", params={"subtype": "purge"})).json()
    assert purges["total"] == 6 and all(e["resource"]["action"] == "D" for e in purges["entry"])
    assert NAME not in await whole_log_text(exchange)


async def test_a_purge_runs_in_pages_and_batches_and_keeps_what_a_referral_made_meanwhile_points_at(
        client, settings, exchange, monkeypatch):
    """A large store is scanned a page at a time and purged a batch a transaction; a new referral for the same
    survivor, made while the purge runs, keeps her Patient record, though the scan had chosen it."""
    import threading
    from contextlib import asynccontextmanager

    from exchange.audit import retention

    hotline = (await client.post("/Organization", json=organization("Hotline"))).json()["id"]
    shelter = (await client.post("/Organization", json=organization("Shelter"))).json()["id"]
    returning = (await client.post("/Patient", json=patient("C-7", name=[{"given": [NAME]}]))).json()["id"]
    gone = (await client.post("/Patient", json=patient("C-8", name=[{"given": ["Noor"]}]))).json()["id"]
    first = await _referral(client, hotline, shelter, returning, "cancelled")
    second = await _referral(client, hotline, shelter, gone, "cancelled")
    url = settings.database_url
    dry = json.loads((await cli("audit", "purge", "--json", "--dry-run", "--days", "0", "--database-url", url)).output)
    assert f"Patient/{returning}" in dry["purged"] and len(dry["purged"]) == 6

    reached, release, units = threading.Event(), threading.Event(), []
    real_open_unit = retention.open_unit

    @asynccontextmanager
    async def pausing_open_unit(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        units.append(1)
        if len(units) == 1:  # after the scan chose what goes, before the first batch
            reached.set()
            release.wait(60)
        async with real_open_unit(*args, **kwargs) as unit:
            yield unit

    monkeypatch.setattr(retention, "PAGE", 1)
    monkeypatch.setattr(retention, "BATCH", 1)
    monkeypatch.setattr(retention, "open_unit", pausing_open_unit)
    running = asyncio.create_task(cli("audit", "purge", "--json", "--days", "0", "--database-url", url))
    assert await asyncio.to_thread(reached.wait, 60)
    again = await _referral(client, hotline, shelter, returning, "requested")  # she comes back meanwhile
    release.set()
    done = await running
    report = json.loads(done.output)

    assert len(units) == 6  # one transaction a resource chosen
    assert f"Patient/{returning}" in report["kept_for_open_referrals"]
    assert set(report["purged"]) == set(dry["purged"]) - {f"Patient/{returning}"}
    assert (await client.get(f"/Patient/{returning}")).status_code == 200
    assert (await client.get(f"/Task/{again['task']}")).status_code == 200
    for purged in (f"Patient/{gone}", f"Task/{first['task']}", f"Task/{second['task']}",
                   f"ServiceRequest/{second['sr']}"):
        assert (await client.get(f"/{purged}")).status_code == 410
    verified = await cli("audit", "verify", "--database-url", url)
    assert verified.exit_code == 0, verified.output
    purges = (await client.get("/AuditEvent", params={"subtype": "purge"})).json()
    assert purges["total"] == 5
