"""Migration 1301: an agent's AuditEvents are found by one index a column, (agent, entry, recorded), where there were
two, (agent, recorded) and (agent, entry); `agent=` searches, with or without a period, answer as before, in log
order, and on PostgreSQL their page reads the new index."""
from __future__ import annotations

import importlib
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from exchange.audit import review
from exchange.settings import Settings
from tests.audit.story import referral_story

agent_log = importlib.import_module("exchange.store.migrations.versions.1301_audit_agent_log")
AUDIT = "system/AuditEvent.rs"
NEW = {"ix_audit_org_log", "ix_audit_client_log"}
OLD = {"ix_audit_org", "ix_audit_client", "ix_audit_org_entry", "ix_audit_client_entry"}


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
            [("agent", ids["prober"])], [("agent", ids["prober"]), *period, ("_sort", "-date")]]


async def _answers(auditor, ids: dict) -> list[tuple[int, list[str]]]:  # noqa: ANN001
    out = []
    for params in _searches(ids):
        bundle = (await auditor.get("/AuditEvent", params=params)).json()
        out.append((bundle["total"], [e["resource"]["id"] for e in bundle.get("entry", [])]))
    return out


async def test_migration_1301_keeps_what_agent_searches_answer(app, make_org, make_client, exchange):
    ids = await referral_story(app, make_org, make_client)
    auditor = await make_client(await make_org("Coordination body", "other"), role="auditor", scopes=AUDIT)
    async with exchange.db.engine.connect() as conn:
        assert NEW <= await conn.run_sync(_indexes) and not OLD & await conn.run_sync(_indexes)
    after = await _answers(auditor, ids)
    assert after[0][0] > 4 and len(after[2][1]) == after[0][0] and after[4] == (0, []) and after[5] == (0, [])
    assert after[1][1] == after[0][1][::-1] and after[3][1] == after[2][1][::-1]  # log order, newest first
    assert after[6] == (after[2][0], after[3][1][:2]) and after[7] == (after[2][0], after[2][1][3:5])
    assert after[8][0] == 2 and after[9][1] == after[8][1][::-1]
    async with exchange.db.engine.begin() as conn:
        indexes = await conn.run_sync(_run(agent_log.downgrade))
    assert OLD <= indexes and not NEW & indexes
    before = await _answers(auditor, ids)
    async with exchange.db.engine.begin() as conn:
        indexes = await conn.run_sync(_run(agent_log.upgrade))
    assert NEW <= indexes and not OLD & indexes
    again = await _answers(auditor, ids)  # (the auditor's own records are its organisation's: none of these)
    for new, old, params in zip(after, before, _searches(ids)):
        assert new == old, params
    assert again == after


async def test_an_agent_search_with_a_period_reads_the_agent_log_index(exchange):
    """The page of `agent=&date=` (newest first) reads (agent, entry, recorded): the period is checked in the
    index, not by fetching each of the agent's records (PostgreSQL, sequential scans off on the tiny table)."""
    if exchange.db.engine.dialect.name != "postgresql":
        return
    settings = Settings(database_url="postgresql+asyncpg://unused")
    for agent, index in (("Organization/o1", "ix_audit_org_log"), ("client-1", "ix_audit_client_log")):
        query = review.parse_query([("agent", agent), ("date", "ge2026-01-01"), ("date", "lt2026-02-01"),
                                    ("_sort", "-date")], settings)
        page, _count = review._statements(query, review.Viewer(None), "postgresql")  # noqa: SLF001
        statement = page.statement.params({**query.params, "page_limit": 50, "page_offset": 0})
        async with exchange.db.engine.connect() as conn:
            await conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
            compiled = statement.compile(dialect=conn.dialect)
            values = tuple(compiled.params[n] for n in compiled.positiontup)
            lines = [r[0] for r in (await conn.exec_driver_sql(f"EXPLAIN {compiled.string}", values)).all()]
        assert any(index in line for line in lines), lines
        assert any("Index Cond" in line and "recorded" in line for line in lines), lines
