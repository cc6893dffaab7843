"""The AuditEvent search's indexes. Migration 1301: an agent's AuditEvents are found by one index a column, (agent,
entry, recorded), where there were two, (agent, recorded) and (agent, entry). Migration 1302: searches are in time
order, ties in log order, and the indexes hold that order, (recorded, entry) and (agent, recorded, entry). Searches
by agent and by period answer alike before and after each, and on PostgreSQL each page is a range of one index read
in its order (no sort)."""
from __future__ import annotations

import asyncio
import importlib
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from exchange.audit import review
from exchange.settings import Settings
from tests.audit.story import referral_story

agent_log = importlib.import_module("exchange.store.migrations.versions.1301_audit_agent_log")
time_order = importlib.import_module("exchange.store.migrations.versions.1302_audit_time_order")
AUDIT = "system/AuditEvent.rs"
PERIOD = [("date", "ge2026-01-01"), ("date", "lt2026-02-01")]
HEAD = {"ix_audit_time", "ix_audit_org_time", "ix_audit_client_time"}  # 1302
AGENT_LOG = {"ix_audit_recorded", "ix_audit_org_log", "ix_audit_client_log"}  # 1301
OLD = {"ix_audit_recorded", "ix_audit_org", "ix_audit_client", "ix_audit_org_entry", "ix_audit_client_entry"}


def _indexes(sync_conn) -> set[str]:  # noqa: ANN001
    return {i["name"] for i in sa.inspect(sync_conn).get_indexes("audit_event")}


def _run(step):  # noqa: ANN001, ANN202
    def go(sync_conn) -> set[str]:  # noqa: ANN001
        with Operations.context(MigrationContext.configure(sync_conn)):
            step()
        return _indexes(sync_conn)
    return go


def _searches(ids: dict) -> list[list[tuple[str, str]]]:
    today = datetime.now(timezone.utc).date()
    period = [("date", f"ge{today - timedelta(days=1)}"), ("date", f"lt{today + timedelta(days=1)}")]
    org = ("agent", f"Organization/{ids['hotline']}")
    return [[org], [org, ("_sort", "-date")], [org, *period], [org, *period, ("_sort", "-date")],
            [org, ("date", f"ge{today + timedelta(days=1)}")], [org, ("date", f"lt{today - timedelta(days=1)}")],
            [org, *period, ("_sort", "-date"), ("_count", "2")], [org, *period, ("_count", "2"), ("_offset", "3")],
            [("agent", ids["prober"])], [("agent", ids["prober"]), *period, ("_sort", "-date")],
            # the story's records and none of the auditor's searches (each search is a record: they come after)
            [("date", f"ge{today - timedelta(days=1)}"), ("date", f"lt{ids['searches_from']}"), ("_count", "100")],
            [("date", f"ge{today - timedelta(days=1)}"), ("date", f"lt{ids['searches_from']}"), ("_sort", "-date"),
             ("_count", "3"), ("_offset", "2")]]


async def _answers(auditor, ids: dict) -> list[tuple[int, list[str]]]:  # noqa: ANN001
    out = []
    for params in _searches(ids):
        bundle = (await auditor.get("/AuditEvent", params=params)).json()
        out.append((bundle["total"], [e["resource"]["id"] for e in bundle.get("entry", [])]))
    return out


async def test_migrations_1301_and_1302_keep_what_agent_and_period_searches_answer(app, make_org, make_client,
                                                                                   exchange):
    ids = await referral_story(app, make_org, make_client)
    auditor = await make_client(await make_org("Coordination body", "other"), role="auditor", scopes=AUDIT)
    searches_from = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
    await asyncio.sleep((searches_from - datetime.now(timezone.utc)).total_seconds())
    ids = {**ids, "searches_from": searches_from.isoformat()}
    async with exchange.db.engine.connect() as conn:
        indexes = await conn.run_sync(_indexes)
    assert HEAD <= indexes and not (AGENT_LOG | OLD) & indexes
    after = await _answers(auditor, ids)
    assert after[0][0] > 4 and len(after[2][1]) == after[0][0] and after[4] == (0, []) and after[5] == (0, [])
    assert after[1][1] == after[0][1][::-1] and after[3][1] == after[2][1][::-1]  # time order, newest first
    assert after[6] == (after[2][0], after[3][1][:2]) and after[7] == (after[2][0], after[2][1][3:5])
    assert after[8][0] == 2 and after[9][1] == after[8][1][::-1]
    assert after[10][0] > after[0][0] and after[11] == (after[10][0], after[10][1][::-1][2:5])
    answers = []
    for step, expected in ((time_order.downgrade, AGENT_LOG), (agent_log.downgrade, OLD)):
        async with exchange.db.engine.begin() as conn:
            indexes = await conn.run_sync(_run(step))
        assert expected <= indexes and not HEAD & indexes
        answers.append(await _answers(auditor, ids))
    for step in (agent_log.upgrade, time_order.upgrade):
        async with exchange.db.engine.begin() as conn:
            indexes = await conn.run_sync(_run(step))
    assert HEAD <= indexes and not (AGENT_LOG | OLD) & indexes
    answers.append(await _answers(auditor, ids))  # (the auditor's own records are its organisation's: none of these)
    for before in answers:
        for new, old, params in zip(after, before, _searches(ids)):
            assert new == old, params


def _literal(value: object) -> str:
    if isinstance(value, int):
        return str(value)
    text = value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)
    return "'" + text.replace("'", "''") + "'"


RARE = ("ix_audit_time",)  # hidden for a rare kind: the one other index that gives the page in its order


@pytest.mark.parametrize("params, index, hidden", [
    ([("agent", "Organization/o1"), *PERIOD], "ix_audit_org_time", ()),
    ([("agent", "client-1"), *PERIOD], "ix_audit_client_time", ()),
    ([("agent", "Organization/o1")], "ix_audit_org_time", ()),
    (PERIOD, "ix_audit_time", ()),
    ([("date", "lt2026-01-01")], "ix_audit_time", ()),
    ([("outcome", "8")], "ix_audit_failed", RARE),
    ([("outcome", "4,12"), *PERIOD], "ix_audit_failed", RARE),
    ([("subtype", "emergency-exception")], "ix_audit_emergency", RARE),
    ([("subtype", "http://dicom.nema.org/resources/ontology/DCM|emergency-exception"), *PERIOD],
     "ix_audit_emergency", RARE),
    ([("outcome", "0,8")], "ix_audit_time", ()),
    ([("subtype", "emergency-exception,read")], "ix_audit_time", ()),
], ids=["organization's period", "client's period", "organization's", "period", "before a day", "failures",
        "failures of a period", "emergency uses", "emergency uses of a period", "successes too",
        "reads too"])
@pytest.mark.parametrize("descending", [True, False], ids=["newest first", "oldest first"])
async def test_a_page_is_a_range_of_one_index_read_in_its_order(exchange, params, index, hidden, descending):
    """The page of an agent's search, a period's, an agent's period's, or of a rare kind's records (failures,
    emergency uses: their partial index, migration 1303) reads one index with the period (if any) as its condition,
    in the order asked: where the period lies in the log does not change what it costs
    (PostgreSQL; on the tiny table sequential and bitmap scans and sorts are off, so the plan shows whether an
    index can give the page, as at scale, not what is cheapest for a few rows). For a rare kind the time index is
    dropped in the transaction (rolled back): on a tiny table it costs the planner as little as the kind's own, and
    what must hold is that the planner can prove the kind's partial index applies."""
    if exchange.db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's plans")
    settings = Settings(database_url="postgresql+asyncpg://unused")
    query = review.parse_query([*params, ("_sort", "-date" if descending else "date")], settings)
    page, _count = review._statements(query, review.Viewer(None), "postgresql")  # noqa: SLF001
    statement = page.statement.params({**query.params, "page_limit": 50, "page_offset": 0})
    async with exchange.db.engine.connect() as conn:
        for name in hidden:
            await conn.execute(sa.text(f"DROP INDEX {name}"))
        for method in ("seqscan", "bitmapscan", "sort"):  # (on a tiny table a sort of all of it would be cheapest)
            await conn.execute(sa.text(f"SET LOCAL enable_{method} = off"))
        compiled = statement.compile(dialect=conn.dialect)
        values = ", ".join(_literal(compiled.params[n]) for n in compiled.positiontup)
        # the plan PostgreSQL uses for the exchange's prepared statements once it stops planning each execution
        # for its values (a generic plan): it must not depend on a value only the parameters carry
        await conn.exec_driver_sql(f"PREPARE audit_page AS {compiled.string}")
        try:
            await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            lines = [r[0] for r in (await conn.exec_driver_sql(f"EXPLAIN EXECUTE audit_page({values})")).all()]
        finally:
            await conn.exec_driver_sql("DEALLOCATE audit_page")
        await conn.rollback()  # (the dropped index is back)
        assert not hidden or set(hidden) <= await conn.run_sync(_indexes)
    scans = [line for line in lines if "Index Scan" in line and "audit_event" in line]
    assert len(scans) == 1 and index in scans[0] and ("Backward" in scans[0]) == descending, lines
    assert not any("Sort" in line for line in lines), lines
    if any(name == "date" for name, _ in params):
        assert any("Index Cond" in line and "recorded" in line for line in lines), lines
