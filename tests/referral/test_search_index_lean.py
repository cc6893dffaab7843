"""Migration 1100: search_index has no row_id, and ix_search_date holds only the rows with a date; every date search
says so (`exchange.fhir.search_sql`), so PostgreSQL may read it, and the searches find what they found."""
from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from exchange.fhir.search import parse_search
from exchange.fhir.search_sql import plan_conditions
from exchange.store.tables import resource

lean = importlib.import_module("exchange.store.migrations.versions.1100_search_index_lean")


async def _found(http, headers: dict, **params) -> list[str]:  # noqa: ANN001
    r = await http.get("/Task", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return [e["resource"]["id"] for e in r.json().get("entry", [])]


def _shape(sync_conn) -> tuple[list[str], str]:  # noqa: ANN001
    """search_index's columns, and ix_search_date's definition as the database holds it."""
    columns = [c["name"] for c in sa.inspect(sync_conn).get_columns("search_index")]
    if sync_conn.dialect.name == "postgresql":
        sql = sync_conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_search_date'")).scalar()
    else:
        sql = sync_conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name = 'ix_search_date'")).scalar()
    return columns, sql


async def test_migration_1100_drops_row_id_and_keeps_only_dated_rows_in_the_date_index(http, as_, ids, make_referral,
                                                                                      exchange):
    task_id = (await make_referral())["Task"]
    shelter = as_(ids["shelter"])

    def run(step):  # noqa: ANN001, ANN202
        def go(sync_conn) -> tuple[list[str], str]:  # noqa: ANN001
            with Operations.context(MigrationContext.configure(sync_conn)):
                step()
            return _shape(sync_conn)
        return go

    async with exchange.db.engine.connect() as conn:
        columns, definition = await conn.run_sync(_shape)
    assert "row_id" not in columns and "date_start IS NOT NULL" in definition
    async with exchange.db.engine.begin() as conn:
        columns, definition = await conn.run_sync(run(lean.downgrade))
    assert "row_id" in columns and "WHERE" not in definition
    assert await _found(http, shelter, **{"authored-on": "ge2000-01-01"}) == [task_id]
    async with exchange.db.engine.begin() as conn:
        columns, definition = await conn.run_sync(run(lean.upgrade))
    assert "row_id" not in columns and "date_start IS NOT NULL" in definition
    assert await _found(http, shelter, **{"authored-on": "ge2000-01-01"}) == [task_id]
    assert await _found(http, shelter, **{"authored-on": "lt2000-01-01"}) == []
    assert await _found(http, shelter, owner=f"Organization/{ids['shelter']}", status="requested") == [task_id]


async def test_every_date_prefix_may_read_the_partial_date_index(exchange):
    """Each prefix's condition implies the index's predicate: with sequential scans off, PostgreSQL's plan for the
    date condition alone reads ix_search_date (a predicate it could not prove would leave it a table scan)."""
    if exchange.db.engine.dialect.name != "postgresql":
        return
    for prefix in ("eq", "ne", "gt", "ge", "lt", "le", "sa", "eb", "ap"):
        plan = parse_search("Task", [("authored-on", f"{prefix}2026-11-20")], default_count=20, max_count=100,
                            strict=False)
        query = sa.select(resource.c.id).where(resource.c.resource_type == "Task", *plan_conditions(plan))
        async with exchange.db.engine.connect() as conn:
            await conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
            await conn.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
            compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            lines = (await conn.execute(sa.text(f"EXPLAIN {compiled}"))).scalars().all()
        assert any("ix_search_date" in line for line in lines), (prefix, lines)
