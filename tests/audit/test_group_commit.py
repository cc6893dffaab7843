"""Group commit (exchange.audit.group_commit): the records of requests that change nothing are committed together,
each request answering only once its own record is; writes keep their records in their own transaction."""
from __future__ import annotations

import asyncio
import sqlite3
from contextlib import asynccontextmanager

from sqlalchemy import event, text

from exchange.audit.verify import verify_database
from tests.audit.conftest import audit_rows, references, sql, subtypes
from tests.referral import world as referral_world
from tests.waiting import until


class GroupStatements:
    """The group commits' statements while `with` runs (they run in a task of their own, so: by connection)."""

    def __init__(self, exchange) -> None:  # noqa: ANN001
        self.engine = exchange.db.engine.sync_engine
        self.batches: list[str] = []
        self.others: list[str] = []

    def _on_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            return
        (self.batches if conn.get_execution_options().get("audit_group_commit") else self.others).append(statement)

    def __enter__(self) -> "GroupStatements":
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        event.remove(self.engine, "before_cursor_execute", self._on_execute)

    @property
    def event_inserts(self) -> list[str]:
        return [s for s in self.batches if "INSERT INTO audit_event" in s]


async def _two_partners(make_org, make_client, patients: int = 5):  # noqa: ANN001, ANN202
    """A hotline that created `patients` Patients (it may read them) and another NGO (for which they do not exist)."""
    hotline, other = await make_org("Hotline", "hotline"), await make_org("Other NGO", "ngo")
    a, b = await make_client(hotline), await make_client(other)
    ids = []
    for _ in range(patients):
        r = await a.post("/Patient", json=referral_world.patient())
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return a, b, ids


@asynccontextmanager
async def _records_held(exchange):  # noqa: ANN001, ANN202
    """Another connection holds what every new record's INSERT needs (SQLite: the write lock, as the CLI may;
    PostgreSQL: a SHARE lock on audit_event) until the block ends: reads go on, their records wait."""
    if exchange.db.is_sqlite:
        # (on a thread: the lock may be the exchange's own for a moment, its linker's, which needs the loop to end)
        holder = sqlite3.connect(exchange.db.engine.url.database, isolation_level=None, check_same_thread=False)
        await asyncio.to_thread(holder.execute, "BEGIN IMMEDIATE")
        try:
            yield
        finally:
            await asyncio.to_thread(holder.execute, "COMMIT")
            holder.close()
        return
    async with exchange.db.engine.connect() as conn:
        await conn.execute(text("LOCK TABLE audit_event IN SHARE MODE"))  # (begins the transaction that holds it)
        try:
            yield
        finally:
            await conn.commit()


async def test_reads_that_come_during_a_commit_each_leave_one_exact_record_in_the_next_batch(
        app, make_org, make_client, exchange):
    a, b, patients = await _two_partners(make_org, make_client)
    reads = [(a, p, 200) for p in patients] * 2 + [(b, p, 404) for p in patients] * 2  # 20 at once
    group = exchange.extensions["audit.group_commit"]
    before = len(await audit_rows(exchange))
    with GroupStatements(exchange) as counted:
        async with _records_held(exchange):
            tasks = [asyncio.create_task(who.get(f"/Patient/{p}")) for who, p, _ in reads]
            # the first read to end writes its record at once, in a batch held by the lock; every other one waits
            await until(lambda: group.waiting == len(reads) - 1, "the later reads to wait for the held batch")
            assert not any(task.done() for task in tasks)  # none answered unrecorded
        answers = await asyncio.gather(*tasks)
    assert [r.status_code for r in answers] == [status for _, _, status in reads]
    assert all(r.json()["id"] == p for r, (_, p, status) in zip(answers, reads) if status == 200)

    records = (await audit_rows(exchange))[before:]
    assert len(records) == len(reads), "one record per read, refused or not"
    for who, patient, status in reads:
        entity = f"Patient/{patient}/_history/1" if status == 200 else f"Patient/{patient}"
        mine = [r for r in records if r["agent"][1]["who"]["identifier"]["value"] == who.client_id
                and references(r) == [entity]]
        assert len(mine) == 2, (who.organization_id, entity)  # (each read twice)
        for record in mine:
            assert subtypes(record) == ["read"] and record["action"] == "R"
            assert record["agent"][0]["who"]["reference"] == f"Organization/{who.organization_id}"
            assert (record["outcome"], record.get("outcomeDesc")) == (("0", None) if status == 200 else
                                                                      ("4", "404 NotFound"))
    # the first read's batch, then one for the nineteen that came while it was held (no read inserted its own)
    assert len(counted.event_inserts) == 2, counted.batches
    assert not any("audit_event" in s and "INSERT" in s for s in counted.others), counted.others
    await exchange.extensions["audit.linker"].settle()
    verdict = await verify_database(exchange)
    assert verdict.ok and verdict.unlinked == 0, verdict


async def test_a_lone_read_is_committed_at_once_in_a_batch_of_its_own(app, make_org, make_client, exchange):
    a, _, [patient] = await _two_partners(make_org, make_client, patients=1)
    before = len(await audit_rows(exchange))
    with GroupStatements(exchange) as counted:
        assert (await a.get(f"/Patient/{patient}")).status_code == 200
        assert (await a.get(f"/Patient?_id={patient}")).status_code == 200
    assert len(counted.event_inserts) == 2, counted.batches  # each request's record before its answer
    assert len(await audit_rows(exchange)) == before + 2


async def _refuse_records(exchange) -> None:  # noqa: ANN001
    """The database refuses every new record (a real failure of its INSERT, as a full disk would be)."""
    if exchange.db.is_sqlite:
        await sql(exchange, "CREATE TRIGGER refuse_records BEFORE INSERT ON audit_event "
                            "BEGIN SELECT RAISE(ABORT, 'records refused'); END")
        return
    await sql(exchange, "CREATE FUNCTION refuse_records() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'records refused'; END $$")
    await sql(exchange, "CREATE TRIGGER refuse_records BEFORE INSERT ON audit_event "
                        "FOR EACH ROW EXECUTE FUNCTION refuse_records()")


async def _accept_records(exchange) -> None:  # noqa: ANN001
    await sql(exchange, "DROP TRIGGER IF EXISTS refuse_records" + ("" if exchange.db.is_sqlite else " ON audit_event"))
    if not exchange.db.is_sqlite:
        await sql(exchange, "DROP FUNCTION IF EXISTS refuse_records()")


async def test_a_read_whose_batch_fails_answers_an_error_and_no_data(app, make_org, make_client, exchange):
    a, b, [patient] = await _two_partners(make_org, make_client, patients=1)
    before = [r["id"] for r in await audit_rows(exchange)]
    await _refuse_records(exchange)
    try:
        answers = await asyncio.gather(a.get(f"/Patient/{patient}"), a.get(f"/Patient?_id={patient}"),
                                       b.get(f"/Patient/{patient}"))
        write = await a.post("/Patient", json=referral_world.patient())
    finally:
        await _accept_records(exchange)
    for r in answers:
        assert r.status_code == 500, r.text
        assert r.json()["resourceType"] == "OperationOutcome" and patient not in r.text
    assert write.status_code == 500, write.text  # a write's record is its own transaction's: nothing of it stays
    assert [r["id"] for r in await audit_rows(exchange)] == before
    assert (await a.get(f"/Patient?_count=50")).json()["total"] == 1
    r = await a.get(f"/Patient/{patient}")  # the database takes records again: so do reads
    assert r.status_code == 200 and r.json()["id"] == patient


async def test_a_write_records_in_its_own_transaction(app, make_org, make_client, exchange):
    a, _, _ = await _two_partners(make_org, make_client, patients=0)
    with GroupStatements(exchange) as counted:
        r = await a.post("/Patient", json=referral_world.patient())
    assert r.status_code == 201, r.text
    assert not counted.batches
    assert any("INSERT INTO audit_event" in s for s in counted.others), counted.others
