"""Group commit of the records of units that change nothing (reads, searches, history, reviews of the log).

Such a unit writes nothing in its own transaction: the audit hook hands its records here once that transaction has
ended, and the request answers only when they are committed (a disclosure is never sent without its durable record;
if their commit fails, the request fails as on any database error: no record, no data). The records of every such
request of the process that arrive while one commit is in flight go together in the next: one statement and one
WAL flush for the lot (PostgreSQL: a single INSERT of the records, their entities and queue rows, its own
transaction; SQLite: one write transaction, the write lock taken once per batch instead of once per read). Nothing
waits on purpose: a request alone is committed at once. Linking is as for any record (`exchange.audit.linker`).
Writes do not come here: their records commit in their own transaction, with the change.
"""
from __future__ import annotations

import asyncio
from typing import Sequence

from exchange.audit.builder import AuditRecord
from exchange.audit.hook import enqueue

BATCH = 500  # records in one statement at most (a burst beyond it takes several)


class GroupCommit:
    """One per process (`exchange.extensions["audit.group_commit"]`). `commit(records)` returns once they are
    committed, or raises what their batch raised.

    No task of its own: the first request to commit while none is in flight writes its records itself; those that
    come while a batch is in flight wait, and when it is done the first of them writes the next batch, its own
    records and every waiting one's. A request given up while waiting (cancelled: it answers nothing, so it disclosed
    nothing) may leave its records unwritten."""

    def __init__(self, exchange) -> None:  # noqa: ANN001
        self.exchange = exchange
        self._busy = False  # a batch is being written
        self._waiting: list[tuple[Sequence[AuditRecord], asyncio.Future]] = []

    @property
    def waiting(self) -> int:
        """Requests whose records wait for the batch in flight to end (they go in the next)."""
        return len(self._waiting)

    async def commit(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        if not self._busy:
            self._busy = True
            await self._write_batch([(records, None)])
            return
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((records, done))
        try:
            committed = await done  # True: in another request's batch; False: this request writes the next
        except asyncio.CancelledError:
            if done.done() and not done.cancelled() and done.exception() is None and done.result() is False:
                self._hand_on()  # (chosen to write the next batch, then given up: the next in the queue writes it)
            raise
        if not committed:
            await self._write_batch(self._take())

    def _take(self) -> list[tuple[Sequence[AuditRecord], asyncio.Future | None]]:
        taken, count = 0, 0
        while taken < len(self._waiting) and (count == 0 or count + len(self._waiting[taken][0]) <= BATCH):
            count += len(self._waiting[taken][0])
            taken += 1
        batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return batch

    async def _write_batch(self, batch: list[tuple[Sequence[AuditRecord], asyncio.Future | None]]) -> None:
        try:
            await self._write([r for records, _ in batch for r in records])
        except BaseException as exc:  # each request of the batch fails with it
            failed = exc if isinstance(exc, Exception) else RuntimeError("the batch's writer was cancelled")
            for _, done in batch:
                if done is not None and not done.done():
                    done.set_exception(failed)
            self._hand_on()
            raise
        for _, done in batch:
            if done is not None and not done.done():
                done.set_result(True)
        self._hand_on()

    def _hand_on(self) -> None:
        """The first request still waiting writes the next batch; with none, no batch is in flight."""
        while self._waiting:
            done = self._waiting[0][1]
            if not done.done():
                done.set_result(False)
                return
            del self._waiting[0]  # (given up waiting)
        self._busy = False

    async def _write(self, records: list[AuditRecord]) -> None:
        async with self.exchange.db.statement() as conn:  # (PostgreSQL: one statement, its own transaction)
            # (tests count a batch's statements as the batch's, shared by its requests: exchange.audit.linker does
            # the same for its passes)
            conn.sync_connection.execution_options(audit_group_commit=True)
            await enqueue(conn, records)
