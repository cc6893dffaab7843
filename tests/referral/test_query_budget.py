"""Query budgets: how many SQL statements (BEGIN and COMMIT not counted) and transactions one request costs, with a
real bearer token, on both databases. The linker's passes are not the request's: they are shared by every request
that finished meanwhile (exchange.audit.linker), and are counted apart. A request that changes nothing (a read, a
search) writes nothing in its own transaction: its record goes in a group commit (exchange.audit.group_commit), one
statement (one a table on SQLite) shared by every such request of its batch; a request alone has a batch of its own,
whose statements are counted here whole, as the request's. A regression that adds reads fails here.

On PostgreSQL a request is one transaction, the token check its first statement; SQLite checks the token in a short
transaction of its own (exchange.auth.bearer.begin_request_transaction says why). The claim's budget is 8 on PostgreSQL
(it was 33, then 18, 16, 13, 12, 11, 9): a claim writes two versions (the Task, and the request narrowed to the
claimant, as the exchange), a row move each, and their version and index rows together, and removes the other
providers' party rows (a unit's repository defers them: rows moved, index and party rows out, versions in, index in;
one statement for all on PostgreSQL, the moves in it too (exchange.store.writes `Pending.move`), a table each on
SQLite); the bearer check is one, and the subscription lookup none of its own (the bearer check reads the
subscriptions' generation along, and the process's copy of the live subscriptions answers: exchange.notify.outbox;
the first write after a subscription changed reads them again, one statement); the hooks' rows (the inbox alert,
the audit record) go with the unit's final flush
(`exchange.kernel.unit.Unit.add_rows`: in its one statement on PostgreSQL, one a table on SQLite). Each counted
request follows one by the same client, so the rate limiter's allowance (exchange.ops.ratelimit: one upsert per
chunk of requests, in a transaction of its own) is already held."""
from __future__ import annotations

from contextvars import ContextVar

import pytest
from sqlalchemy import event

from tests.conftest import SYSTEM_HEADER

from . import world

_COUNTING: ContextVar[bool] = ContextVar("counting_statements", default=False)
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


class Statements:
    """The statements and transactions issued while `with counter:` runs (background tasks excluded)."""

    def __init__(self, engine) -> None:  # noqa: ANN001
        self.engine = engine.sync_engine
        self.statements: list[str] = []
        self.transactions: list = []
        self.linker: list[str] = []
        self.batches: list[str] = []  # the group commits' statements (each batch's own task runs them)

    def _on_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith(_CONTROL):
            return
        if conn.get_execution_options().get("audit_group_commit"):
            self.batches.append(statement)
            return
        if not _COUNTING.get():
            return
        if conn.get_execution_options().get("audit_linker"):
            self.linker.append(statement)
            return
        self.statements.append(statement)
        transaction = conn.get_transaction() or object()  # (a statement outside a transaction is one by itself)
        if not any(transaction is seen for seen in self.transactions):
            self.transactions.append(transaction)  # kept alive, so no two are ever the same object

    def __enter__(self) -> "Statements":
        self.statements.clear()
        self.transactions.clear()
        self.linker.clear()
        self.batches.clear()
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        self._token = _COUNTING.set(True)
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        _COUNTING.reset(self._token)
        event.remove(self.engine, "before_cursor_execute", self._on_execute)

    def __str__(self) -> str:
        return f"{len(self.statements)} statements in {len(self.transactions)} transactions:\n" + \
            "\n".join(s.split("\n")[0][:120] for s in self.statements) + \
            f"\n{len(self.batches)} statements of group commits:\n" + \
            "\n".join(s.split("\n")[0][:120] for s in self.batches)


@pytest.fixture
def counter(exchange) -> Statements:  # noqa: ANN001
    return Statements(exchange.db.engine)


def _budget(exchange, postgresql: int, sqlite: int) -> int:  # noqa: ANN001
    """A unit's deferred rows are one statement on PostgreSQL (exchange.store.writes: data-modifying CTEs), one a
    table on SQLite."""
    return sqlite if exchange.db.is_sqlite else postgresql


def _transactions(exchange) -> int:  # noqa: ANN001
    return 2 if exchange.db.is_sqlite else 1


async def test_a_read_by_id_costs_three_statements_in_one_transaction(http, as_, ids, make_referral, counter,
                                                                     exchange):
    """The bearer check and the read in the request's transaction, which writes nothing; its record is the one
    statement of its group commit (the batch of a read alone)."""
    ref = await make_referral()
    shelter = as_(ids["shelter"])
    assert (await http.get(f"/Task/{ref['Task']}", headers=shelter)).status_code == 200  # (its rate-limit chunk)
    with counter:
        r = await http.get(f"/Task/{ref['Task']}", headers=shelter)
    assert r.status_code == 200
    assert len(counter.statements) <= 2 and len(counter.transactions) == _transactions(exchange), str(counter)
    assert len(counter.batches) == 1 and "audit_event" in counter.batches[0], str(counter)
    assert not any("audit_event" in s for s in counter.statements), str(counter)


@pytest.mark.parametrize("owner", ["organisation", "service"])
async def test_an_accept_costs_at_most_three_statements(http, as_, ids, make_referral, counter, exchange, owner):
    """The bearer check, the Task's read and the unit's flush, which moves the Task's row too (exchange.store.writes
    `Pending.move`: PostgreSQL 4 -> 3). Also with the owner named by its HealthcareService (as bench/lifecycle.py's
    referrals name it): the write-authority rule asks which organisation that is, and the Task's read brought the
    entry with it (`Repository.read_ahead`). No subscription lookup of its own: the live subscriptions come from the
    process's copy, current by the generation the bearer check read along (PostgreSQL 5 -> 4, SQLite 9 -> 8)."""
    ref = await (make_referral() if owner == "organisation" else
                 make_referral(to_keys=(f"HealthcareService/{ids['svc-shelter']}",)))
    shelter = as_(ids["shelter"])
    current = (await http.get(f"/Task/{ref['Task']}", headers=shelter)).json()
    with counter:
        r = await http.put(f"/Task/{ref['Task']}", json=dict(current, status="accepted"),
                           headers={**shelter, "If-Match": 'W/"1"'})
    assert r.status_code == 200, r.text
    assert len(counter.statements) <= _budget(exchange, 3, 8), str(counter)
    assert len(counter.transactions) == _transactions(exchange), str(counter)
    # a write's record commits with it, in its transaction, never in a group commit
    assert any("audit_event" in s for s in counter.statements) and not counter.batches, str(counter)


async def test_a_claim_costs_at_most_eight_statements(http, as_, ids, make_referral, counter, exchange):
    ids["shelter2"] = (await http.post("/Organization", json={"resourceType": "Organization",
                                                               "name": "Second shelter"})).json()["id"]
    assert (await http.post("/HealthcareService", json=world.service(ids["shelter2"], ["safety-shelter"]))
            ).status_code == 201
    await as_.add(ids["shelter2"])
    ref = await make_referral(to_keys=("shelter", "shelter2"), owner=None)
    shelter = as_(ids["shelter"])
    current = (await http.get(f"/Task/{ref['Task']}", headers=shelter)).json()
    claim = dict(current, owner={"reference": f"Organization/{ids['shelter']}"}, status="accepted")
    with counter:
        r = await http.put(f"/Task/{ref['Task']}", json=claim, headers={**shelter, "If-Match": 'W/"1"'})
    assert r.status_code == 200, r.text
    assert len(counter.statements) <= _budget(exchange, 8, 14), str(counter)
    assert len(counter.transactions) == _transactions(exchange), str(counter)


async def test_a_referral_transaction_costs_at_most_four_statements(http, as_, ids, make_referral, counter,
                                                                      exchange):
    """Patient, Consent, ServiceRequest and Task in one Bundle: their rows, with their version, index, party and
    recorder rows, the alert and the audit record, go in the unit's one final flush (one statement on PostgreSQL,
    one a table on SQLite); the bearer check, the routing rule's lookup of the performer's services and one read.
    The rules' lookup of the requests that name the new Patient reads nothing: the unit drew her id itself
    (exchange.store.reads referring_ids), so it neither flushes nor asks (PostgreSQL 7 -> 5, SQLite 12 -> 11); nor
    does the subscription lookup, which the process's copy of the live subscriptions answers (5 -> 4, 11 -> 10)."""
    await make_referral()  # (its rate-limit chunk)
    with counter:
        await make_referral()
    assert len(counter.statements) <= _budget(exchange, 4, 10), str(counter)
    assert len(counter.transactions) == _transactions(exchange), str(counter)


async def test_statements_run_on_the_driver_are_counted_and_in_the_transaction(exchange, counter):  # noqa: ANN001
    """The hot statements (the token check, the audit insert, the linker's) run on asyncpg directly
    (exchange.store.direct): they are counted like any other, and run inside the caller's transaction."""
    from exchange.auth.service import auth_service

    async with exchange.db.transaction() as conn:
        with counter:
            assert await auth_service(exchange).registry.token_state("nobody", "nothing", conn) == (None, False)
        if not exchange.db.is_sqlite:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw.is_in_transaction()
    assert len(counter.statements) == 1 and "auth_client" in counter.statements[0], str(counter)


async def test_an_inbox_search_costs_three_statements_and_a_full_page_one_more(http, as_, ids, make_referral,
                                                                               counter, exchange):
    """The bearer check, the page (the total is its rows when the page holds the last match) and the audit record
    (its group commit's: on SQLite one statement a table, the record and its entities); a full page counts the
    matches too."""
    for _ in range(2):
        await make_referral()
    shelter, inbox = as_(ids["shelter"]), f"/Task?owner=Organization/{ids['shelter']}&status=requested&_sort=-_lastUpdated"
    for count, statements in (("50", 3), ("2", 4)):
        assert (await http.get(f"{inbox}&_count={count}", headers=shelter)).status_code == 200  # (its shape known)
        with counter:
            r = await http.get(f"{inbox}&_count={count}", headers=shelter)
        assert r.status_code == 200 and r.json()["total"] == 2, r.text
        assert len(counter.statements) + len(counter.batches) <= _budget(exchange, statements, statements + 1), \
            str(counter)  # (SQLite: a table each)
        assert len(counter.transactions) == _transactions(exchange), str(counter)


async def test_an_audit_search_costs_three_statements(http, ids, make_referral, make_client, counter, exchange):
    """The bearer check, the page (its rows tell the total) and the audit record of the review itself (its group
    commit's)."""
    ref = await make_referral()
    auditor = await make_client(ids["other"], role="auditor", scopes="system/AuditEvent.rs")
    headers = {"Authorization": f"Bearer {auditor.access_token}", SYSTEM_HEADER: "0"}
    assert (await http.get(f"/AuditEvent?entity=Task/{ref['Task']}", headers=headers)).status_code == 200
    with counter:
        r = await http.get(f"/AuditEvent?entity=Task/{ref['Task']}&_count=20", headers=headers)
    assert r.status_code == 200 and r.json()["total"] == len(r.json()["entry"]) > 0, r.text
    assert len(counter.statements) + len(counter.batches) <= 3, str(counter)
    assert len(counter.transactions) == _transactions(exchange), str(counter)
