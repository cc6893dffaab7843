"""The combined owner+status key of Tasks, by which an inbox search finds them: kept by the write path through a
Task's states, and written by migration 0800 for the Tasks stored before it (once each)."""
from __future__ import annotations

import importlib
import json
from datetime import datetime

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from exchange.fhir.indexing import index_rows
from exchange.store.clock import to_db
from exchange.store.tables import resource, resource_version, search_index

migration = importlib.import_module("exchange.store.migrations.versions.0800_owner_status")


def _old_task(task_id: str, status: str) -> dict:
    return {"resourceType": "Task", "id": task_id, "meta": {"versionId": "1", "lastUpdated": "2026-11-20T08:00:00.000Z"},
            "status": status, "intent": "order", "authoredOn": "2026-11-20T08:00:00Z",
            "owner": {"reference": "Organization/old-shelter"}}


async def _store_as_before(conn, task: dict) -> None:  # noqa: ANN001
    """The rows the exchange kept before 0800: its index without the combined key."""
    row = dict(resource_type="Task", id=task["id"], version_id=1, last_updated=datetime(2026, 11, 20, 8, 0),
               deleted=False, content=json.dumps(task))
    await conn.execute(sa.insert(resource).values(**row))
    await conn.execute(sa.insert(resource_version).values(**row, method="POST"))
    for r in index_rows("Task", task):
        if r.param != "owner+status":
            await conn.execute(sa.insert(search_index).values(
                resource_type="Task", resource_id=task["id"], param=r.param, system=r.system, value=r.value,
                text=r.text, date_start=to_db(r.date_start) if r.date_start else None,
                date_end=to_db(r.date_end) if r.date_end else None))


def _upgrade(sync_conn) -> None:  # noqa: ANN001
    with Operations.context(MigrationContext.configure(sync_conn)):
        migration.upgrade()


async def _inbox(client, status: str) -> list[str]:  # noqa: ANN001
    found = (await client.get("/Task", params={"owner": "Organization/old-shelter", "status": status})).json()
    return sorted(e["resource"]["id"] for e in found.get("entry", []))


async def test_tasks_stored_before_the_key_are_found_by_owner_and_status_after_the_migration(client, exchange):
    async with exchange.db.engine.begin() as conn:
        await _store_as_before(conn, _old_task("old-open", "requested"))
        await _store_as_before(conn, _old_task("old-taken", "accepted"))
    assert await _inbox(client, "requested") == []  # (the search finds Tasks by the key: without it, none)
    async with exchange.db.engine.begin() as conn:
        await conn.run_sync(_upgrade)
        await conn.run_sync(_upgrade)  # a second run adds nothing
        keys = (await conn.execute(sa.select(search_index.c.resource_id, search_index.c.value)
                                   .where(search_index.c.param == "owner+status")
                                   .order_by(search_index.c.resource_id))).all()
    assert [tuple(k) for k in keys] == [("old-open", "old-shelter|requested"), ("old-taken", "old-shelter|accepted")]
    assert await _inbox(client, "requested") == ["old-open"]
    assert await _inbox(client, "requested,accepted") == ["old-open", "old-taken"]
    assert await _inbox(client, "completed") == []


async def test_the_key_follows_the_task_through_its_states(http, as_, ids, make_referral):
    ref = await make_referral()
    shelter = as_(ids["shelter"])
    current = (await http.get(f"/Task/{ref['Task']}", headers=shelter)).json()
    owner = current["owner"]["reference"]

    async def inbox(status: str) -> list[str]:
        found = (await http.get("/Task", params={"owner": owner, "status": status}, headers=shelter)).json()
        return [e["resource"]["id"] for e in found.get("entry", [])]

    assert await inbox("requested") == [ref["Task"]]
    r = await http.put(f"/Task/{ref['Task']}", json=dict(current, status="accepted"),
                       headers={**shelter, "If-Match": 'W/"1"'})
    assert r.status_code == 200, r.text
    assert await inbox("requested") == []
    assert await inbox("accepted") == [ref["Task"]]
    assert await inbox("requested,accepted") == [ref["Task"]]
