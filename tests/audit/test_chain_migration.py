"""Migration 1200: the records' chain positions move out of audit_event into audit_chain, the queued records' entries
into audit_queue, and the log verifies and links as before (and back, for a downgrade)."""
from __future__ import annotations

import importlib

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from tests.audit.conftest import cli
from tests.fhir_checks import organization

migration = importlib.import_module("exchange.store.migrations.versions.1200_audit_chain_rows")


@pytest.fixture
def settings(settings):  # noqa: ANN001, ANN201 - no periodic pass: the queued record stays queued until linked
    return settings.model_copy(update={"audit_link_interval": 0})


async def _migrate(exchange, step) -> None:  # noqa: ANN001
    async with exchange.db.engine.begin() as conn:
        def run(sync_conn) -> None:  # noqa: ANN001
            with Operations.context(MigrationContext.configure(sync_conn)):
                step()
        await conn.run_sync(run)


async def _verify(settings):  # noqa: ANN001, ANN202
    return await cli("audit", "verify", "--database-url", settings.database_url)


async def test_linked_and_queued_records_move_to_the_chain_and_the_queue(client, settings, exchange):
    from exchange.audit.builder import records_for_events
    from exchange.audit.hook import enqueue
    from exchange.context import system_context
    from exchange.kernel.unit import Event

    for i in range(3):
        assert (await client.post("/Organization", json=organization(f"Org {i}"))).status_code == 201
    await exchange.extensions["audit.linker"].settle()
    async with exchange.db.transaction() as conn:  # committed, not linked
        await enqueue(conn, records_for_events(system_context(), "read", [Event("read", "R", "Organization", "x", 1)],
                                               settings.base_url))
    await _migrate(exchange, migration.downgrade)  # the log as it was before 1200: chain columns in the record
    async with exchange.db.engine.connect() as conn:
        old = (await conn.execute(text("SELECT seq, hash IS NOT NULL, linked IS NOT NULL FROM audit_event "
                                       "ORDER BY entry"))).all()
    assert [tuple(r) for r in old] == [(1, True, True), (2, True, True), (3, True, True), (None, False, False)]

    await _migrate(exchange, migration.upgrade)
    async with exchange.db.engine.connect() as conn:
        chain = (await conn.execute(text("SELECT seq FROM audit_chain ORDER BY entry"))).scalars().all()
        queued = (await conn.execute(text("SELECT count(*) FROM audit_queue"))).scalar()
    assert chain == [1, 2, 3] and queued == 1
    moved = await _verify(settings)
    assert moved.exit_code == 0 and "ok: 3 records verified; 1 record queued, not yet linked" in moved.output, \
        moved.output
    linked = await cli("audit", "link", "--database-url", settings.database_url)
    assert linked.exit_code == 0 and linked.output.startswith("linked 1 record"), linked.output
    after = await _verify(settings)
    assert after.exit_code == 0 and "ok: 4 records verified" in after.output and "queued" not in after.output
    assert (await client.post("/Organization", json=organization("After"))).status_code == 201  # (the trigger, SQLite)
    await exchange.extensions["audit.linker"].settle()
    assert "ok: 5 records verified" in (await _verify(settings)).output
