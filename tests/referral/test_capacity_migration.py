"""The data migration 0700: stored HealthcareServices with the old accepting-referrals get a capacity version."""
from __future__ import annotations

import importlib
import json

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from exchange.referral import codes
from exchange.store.tables import resource, resource_version, search_index

migration = importlib.import_module("exchange.store.migrations.versions.0700_directory_capacity")


def _old_entry(resource_id: str, accepting: bool) -> dict:
    return {"resourceType": "HealthcareService", "id": resource_id,
            "meta": {"versionId": "1", "lastUpdated": "2026-11-20T08:00:00.000Z"}, "active": True,
            "name": "Old shelter", "providedBy": {"reference": "Organization/org-1"},
            "extension": [{"url": codes.EXT_ACCEPTING, "valueBoolean": accepting}],
            "type": [{"coding": [{"system": codes.SERVICE_TYPE, "code": "safety-shelter"}]}]}


async def test_stored_accepting_referrals_become_capacity(client, exchange):
    from datetime import datetime

    written = datetime(2026, 11, 20, 8, 0)
    async with exchange.db.engine.begin() as conn:
        for rid, accepting in (("old-open", True), ("old-full", False)):
            row = dict(resource_type="HealthcareService", id=rid, version_id=1, last_updated=written, deleted=False,
                       content=json.dumps(_old_entry(rid, accepting)))
            await conn.execute(sa.insert(resource).values(**row))
            await conn.execute(sa.insert(resource_version).values(**row, method="POST"))
            await conn.execute(sa.insert(search_index).values(resource_type="HealthcareService", resource_id=rid,
                                                              param="accepting-referrals",
                                                              value="true" if accepting else "false"))

        def run(sync_conn) -> None:  # noqa: ANN001
            with Operations.context(MigrationContext.configure(sync_conn)):
                migration.upgrade()
        await conn.run_sync(run)
    body = (await client.get("/HealthcareService/old-full")).json()
    assert body["meta"]["versionId"] == "2"
    assert body["extension"] == [{"url": codes.EXT_CAPACITY, "extension": [
        {"url": "status", "valueCode": "closed"}, {"url": "updated", "valueDateTime": "2026-11-20T08:00:00.000Z"}]}]
    history = (await client.get("/HealthcareService/old-full/_history")).json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert history["entry"][1]["resource"]["extension"][0]["url"] == codes.EXT_ACCEPTING  # history untouched
    found = (await client.get("/HealthcareService", params={"capacity": "available"})).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["old-open"]
    assert (await client.get("/HealthcareService", params={"capacity": "closed"})).json()["total"] == 1
