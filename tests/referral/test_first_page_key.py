"""A search on one reference value in `_lastUpdated` order (a hotline's sent Tasks, a shelter's inbox) reads its
page off the index rows in that order (`exchange.fhir.search_sql.plan_search`): the pages are those of the plain
conditions, every index row carries its resource's last_updated through the writes, and migration 0900 sets it for
the rows stored before."""
from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from exchange.fhir.search import parse_search
from exchange.fhir.search_sql import plan_search
from exchange.store.tables import resource, search_index

from .conftest import change_task

migration = importlib.import_module("exchange.store.migrations.versions.0900_index_updated")


async def _page(http, headers: dict, **params) -> tuple[list[str], int | None]:  # noqa: ANN001
    r = await http.get("/Task", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return [e["resource"]["id"] for e in r.json().get("entry", [])], r.json().get("total")


async def _rows_out_of_step(exchange) -> int:  # noqa: ANN001
    """Index rows whose last_updated is not their resource's."""
    async with exchange.db.engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(search_index.join(resource, sa.and_(
            resource.c.resource_type == search_index.c.resource_type, resource.c.id == search_index.c.resource_id)))
            .where(sa.or_(search_index.c.last_updated.is_(None),
                          search_index.c.last_updated != resource.c.last_updated)))).scalar()


def _driven(params: list[tuple[str, str]]) -> bool:
    conditions, _order, _first_by = plan_search(parse_search("Task", params, default_count=20, max_count=100, strict=False))
    return "driver" in " ".join(str(c) for c in conditions)


def test_which_searches_read_their_page_off_one_key():
    assert _driven([("requester", "Organization/h"), ("_sort", "-_lastUpdated")])
    assert _driven([("owner", "HealthcareService/s")])  # (the default order: oldest first)
    assert _driven([("owner", "HealthcareService/s"), ("status", "requested"), ("_sort", "_lastUpdated")])
    assert not _driven([("owner", "HealthcareService/s"), ("status", "requested,accepted")])  # (its key: few rows)
    assert not _driven([("requester", "Organization/h"), ("_sort", "_id")])
    assert not _driven([("requester", "Organization/h"), ("_sort", "-_lastUpdated,_id")])
    assert not _driven([("requester", "Organization/h,Organization/i")])
    assert not _driven([("requester", "h")])  # (a bare id: any type of target)
    assert not _driven([("status", "requested")])


async def test_pages_read_off_the_key_are_the_pages_of_the_plain_search(http, as_, ids, make_referral, exchange):
    tasks = [(await make_referral())["Task"] for _ in range(5)]
    shelter, hotline, other = as_(ids["shelter"]), as_(ids["hotline"]), as_(ids["other"])
    for task_id in (tasks[1], tasks[3]):  # (their last update now orders them after the others)
        assert (await change_task(http, shelter, task_id, status="accepted")).status_code == 200
    assert await _rows_out_of_step(exchange) == 0
    async with exchange.db.engine.begin() as conn:  # three written at one instant (as one transaction can): ties
        at = (await conn.execute(sa.select(resource.c.last_updated).where(resource.c.id == tasks[0]))).scalar()
        for task_id in (tasks[2], tasks[4]):
            await conn.execute(sa.update(resource).where(resource.c.id == task_id).values(last_updated=at))
            await conn.execute(sa.update(search_index).where(search_index.c.resource_id == task_id)
                               .values(last_updated=at))
    requester, owner = f"Organization/{ids['hotline']}", f"Organization/{ids['shelter']}"
    queries = [({"requester": requester}, hotline), ({"owner": owner}, shelter),
               ({"owner": owner, "status": "requested"}, shelter)]
    for criteria, caller in queries:
        for keyed_sort, plain_sort in (("-_lastUpdated", "-_lastUpdated,_id"), ("_lastUpdated", "_lastUpdated,_id"),
                                       (None, "_lastUpdated,_id")):
            everything, total = await _page(http, caller, **criteria, _sort=plain_sort, _count="10")
            assert total == len(everything) and everything
            for offset in range(0, 6, 2):
                keyed = await _page(http, caller, **criteria, _count="2", _offset=str(offset),
                                    **({"_sort": keyed_sort} if keyed_sort else {}))
                assert keyed == (everything[offset:offset + 2], total), (criteria, keyed_sort, offset)
    newest_first, _ = await _page(http, hotline, requester=requester, _sort="-_lastUpdated")
    assert newest_first == [tasks[3], tasks[1], *sorted([tasks[0], tasks[2], tasks[4]])]
    assert await _page(http, other, requester=requester, _sort="-_lastUpdated") == ([], 0)  # (need to know)


async def test_rows_stored_before_the_column_get_their_resources_time(http, ids, make_referral, exchange):
    ref = await make_referral()
    async with exchange.db.engine.begin() as conn:
        await conn.execute(sa.update(search_index).values(last_updated=None))  # (as stored before 0900)
    assert await _rows_out_of_step(exchange) > 0

    def backfill(sync_conn) -> None:  # noqa: ANN001
        with Operations.context(MigrationContext.configure(sync_conn)):
            migration.backfill()

    async with exchange.db.engine.begin() as conn:
        await conn.run_sync(backfill)
    assert await _rows_out_of_step(exchange) == 0
    async with exchange.db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(sa.func.count()).where(search_index.c.resource_id == ref["Task"]))
                ).scalar()
    assert rows > 0


covering = importlib.import_module("exchange.store.migrations.versions.1000_value_index_covers")


async def test_migration_1000_puts_system_and_resource_id_in_the_value_index(http, as_, ids, make_referral, exchange):
    """Down and up again on a store with a referral: the index has its columns, and the inbox finds and counts."""
    task_id = (await make_referral())["Task"]
    shelter, owner = as_(ids["shelter"]), f"Organization/{ids['shelter']}"

    def run(step):  # noqa: ANN001, ANN202
        def go(sync_conn) -> list[str]:  # noqa: ANN001
            with Operations.context(MigrationContext.configure(sync_conn)):
                step()
            return next(i["column_names"] for i in sa.inspect(sync_conn).get_indexes("search_index")
                        if i["name"] == "ix_search_value_updated")
        return go

    async with exchange.db.engine.begin() as conn:
        assert await conn.run_sync(run(covering.downgrade)) == ["resource_type", "param", "value", "last_updated"]
    assert await _page(http, shelter, owner=owner, _sort="-_lastUpdated", _count="1") == ([task_id], 1)
    async with exchange.db.engine.begin() as conn:
        assert await conn.run_sync(run(covering.upgrade)) == ["resource_type", "param", "value", "last_updated",
                                                              "system", "resource_id"]
    assert await _page(http, shelter, owner=owner, _sort="-_lastUpdated", _count="1") == ([task_id], 1)
    assert await _page(http, shelter, owner=owner, status="requested", _count="1") == ([task_id], 1)
