"""The linker: integrates queued AuditEvents into the hash chain, in entry order, one pass at a time.

A pass, in one short transaction of its own: take the linker lock (PostgreSQL: a transaction-level advisory lock, so
passes of all processes of a deployment take turns; SQLite: the write lock), read the head and the queue
(`audit_queue`, in entry order), insert the queued records' chain positions and hashes (`exchange.audit.chain.link`)
into `audit_chain`, delete their queue rows, advance the head, commit. A record is never lost between its commit and
its linking: its queue row, committed with it, waits for the next pass, whichever process runs it; the record's own
row is never written again. Within a process, requests that finished while a pass ran share the next one (`settle`),
so the chain costs one pass per burst, not one locked row per request.

A request does not wait for its records to be linked. In a server process (`start`/`stop`, registered in
`exchange.on_start`/`on_stop`) the audit hook only `kick`s the process's linking task after the commit and answers;
the task runs the next pass at once, or once `SPACING` has passed since the previous one started (kicks that
arrive meanwhile share it), so a record is linked within about one pass and `SPACING` after its commit (the window
`make bench` measures, `audit_link_window_ms`). Without that task (the CLI, a worker) `kick` says so and the hook
settles before returning, as a command should. Whoever needs the chain to include everything committed so far
awaits `settle()` (checkpoints do) or runs `exchange audit link`.
"""
from __future__ import annotations

import asyncio
import logging

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.audit.chain import GENESIS, link
from exchange.audit.tables import audit_chain, audit_event, audit_head, audit_queue
from exchange.store import direct
from exchange.store.clock import to_db, utcnow

log = logging.getLogger("exchange.audit")
LOCK_KEY = 0x6175646974  # "audit": the advisory lock of the linker on PostgreSQL
BATCH = 500
# A kicked pass starts at least this long after the previous one started: under load the requests of a process share
# a pass every 10 ms (at most 100 passes a second, each a lock, a read of the head and queue, a write and a commit)
# instead of one each; a kick after a quiet moment still runs at once. The window it adds is at most this.
SPACING = 0.01


async def _head(conn: AsyncConnection) -> tuple[int, str]:
    row = await direct.fetchrow(conn, _HEAD, {})
    if row is None:  # the migration seeds this row; without it, carry on from the newest linked record
        newest = (await conn.execute(select(audit_chain.c.seq, audit_chain.c.hash).where(
            audit_chain.c.seq == select(func.max(audit_chain.c.seq)).scalar_subquery()))).first()
        seq, hash_ = (int(newest.seq), newest.hash) if newest is not None else (0, GENESIS)
        await conn.execute(insert(audit_head).values(id=1, seq=seq, hash=hash_))
        return seq, hash_
    return int(row["seq"]), row["hash"]


# A pass's statements, compiled once and run on the driver (exchange.store.direct): the linker runs after every
# burst of requests, so they are as hot as a request's own. A pass writes only narrow rows: the chain positions
# (audit_chain) in, the queue rows (audit_queue) out, the head; the records themselves (audit_event) are never
# updated.
_LOCK = direct.Statement(text("SELECT pg_advisory_xact_lock(:key)"))
_HEAD = direct.Statement(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1))
# (each queued record's content looked up by its entry, a subquery a row: a join of the queue to the log lets the
# planner choose a merge join, which walks the log's key from its first record up to the queue's, on every pass)
_FIRST_QUEUED = select(audit_queue.c.entry).order_by(audit_queue.c.entry).limit(BATCH).subquery("q")
_QUEUED = direct.Statement(select(_FIRST_QUEUED.c.entry, select(audit_event.c.content).where(
    audit_event.c.entry == _FIRST_QUEUED.c.entry).scalar_subquery().label("content")).order_by(_FIRST_QUEUED.c.entry))
_CHAIN = direct.Statement(insert(audit_chain).inline(), ("entry", "seq", "hash", "linked"))
_UNQUEUE = direct.Statement(delete(audit_queue).where(audit_queue.c.entry == bindparam("q_entry")))
_ADVANCE = direct.Statement(update(audit_head).where(audit_head.c.id == 1).values(
    seq=bindparam("h_seq"), hash=bindparam("h_hash")))


# PostgreSQL: a pass in three statements (after the lock): the head and the first batch of the queue read together,
# and each batch's chain positions inserted, its queue rows deleted and the head advanced together (the new values
# as arrays, unnested).
_HEAD_AND_QUEUE = direct.Statement(text(
    "SELECT h.seq AS head_seq, h.hash AS head_hash, q.entry, q.content FROM audit_head AS h "
    "LEFT JOIN LATERAL (SELECT u.entry, (SELECT e.content FROM audit_event AS e WHERE e.entry = u.entry) AS content "
    "FROM audit_queue AS u ORDER BY u.entry LIMIT :batch) AS q ON true WHERE h.id = 1 ORDER BY q.entry"))
_LINK_AND_ADVANCE = direct.Statement(text(
    "WITH chained AS (INSERT INTO audit_chain (entry, seq, hash, linked) "
    "SELECT v.entry, v.seq, v.hash, CAST(:linked AS timestamp) "
    "FROM unnest(CAST(:entries AS bigint[]), CAST(:seqs AS integer[]), CAST(:hashes AS varchar[])) "
    "AS v(entry, seq, hash)), "
    "unqueued AS (DELETE FROM audit_queue WHERE entry = ANY(CAST(:entries AS bigint[]))) "
    "UPDATE audit_head SET seq = :head_seq, hash = :head_hash WHERE id = 1"))


async def link_pass(conn: AsyncConnection) -> int:
    """Link every queued record in `conn`'s transaction (the caller commits). Returns how many were linked."""
    # (tests count a request's statements without the linker's; set on the sync connection: a key of the exchange's
    # own sends nothing, so no pass through SQLAlchemy's greenlet for it)
    conn.sync_connection.execution_options(audit_linker=True)
    if conn.dialect.name != "postgresql":
        return await _link_from(conn, *await _head(conn))
    await direct.execute(conn, _LOCK, {"key": LOCK_KEY})
    rows = await direct.fetch(conn, _HEAD_AND_QUEUE, {"batch": BATCH})
    if not rows:  # no head row: the general way makes one
        return await _link_from(conn, *await _head(conn))
    seq, previous = int(rows[0]["head_seq"]), rows[0]["head_hash"]
    queued, linked = [r for r in rows if r["entry"] is not None], 0
    while queued:
        entries, seqs, hashes = [], [], []
        for row in queued:
            seq += 1
            previous = link(previous, seq, row["content"].encode())
            entries.append(row["entry"])
            seqs.append(seq)
            hashes.append(previous)
        await direct.execute(conn, _LINK_AND_ADVANCE, {"entries": entries, "seqs": seqs, "hashes": hashes,
                                                       "linked": to_db(utcnow()), "head_seq": seq,
                                                       "head_hash": previous})
        linked += len(queued)
        queued = await direct.fetch(conn, _QUEUED, {}) if len(queued) == BATCH else []
    return linked


async def _link_from(conn: AsyncConnection, seq: int, previous: str) -> int:
    """Link the queue after the head (`seq`, `previous`), a batch at a time, then advance the head."""
    linked = 0
    while True:
        rows = await direct.fetch(conn, _QUEUED, {})
        if not rows:
            break
        now = to_db(utcnow())
        values = []
        for row in rows:
            seq += 1
            previous = link(previous, seq, row["content"].encode())
            values.append({"entry": row["entry"], "seq": seq, "hash": previous, "linked": now})
        await direct.executemany(conn, _CHAIN, values)
        await direct.executemany(conn, _UNQUEUE, [{"q_entry": row["entry"]} for row in rows])
        linked += len(rows)
        if len(rows) < BATCH:
            break
    if linked:
        await direct.execute(conn, _ADVANCE, {"h_seq": seq, "h_hash": previous})
    return linked


async def unlinked_count(conn: AsyncConnection) -> int:
    """The records queued for the linker."""
    return int((await conn.execute(select(func.count()).select_from(audit_queue))).scalar() or 0)


class Linker:
    """One per process. `settle()` returns once every record committed before the call is linked."""

    def __init__(self, exchange) -> None:  # noqa: ANN001
        self.exchange = exchange
        self._lock = asyncio.Lock()
        self._asked = 0  # tickets handed out
        self._done = 0  # every ticket up to this one is covered by a finished pass
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def run_pass(self) -> int:
        async with self.exchange.db.transaction() as conn:
            return await link_pass(conn)

    async def settle(self) -> None:
        self._asked += 1
        await self._cover(self._asked)

    async def _cover(self, ticket: int) -> None:
        """Return once a pass that started after ticket `ticket` was handed out has finished."""
        async with self._lock:
            if self._done >= ticket:  # a pass that started after this caller's commit already linked it
                return
            covered = self._asked
            await self.run_pass()
            self._done = covered

    def kick(self) -> bool:
        """Ask the process's linking task for a pass soon; False when there is none (the caller settles itself)."""
        if self._task is None or self._task.done():
            return False
        self._asked += 1  # (a settle() that runs before the task wakes covers this kick: no second pass)
        self._wake.set()
        return True

    async def start(self, _exchange=None) -> None:  # noqa: ANN001
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="audit-linker-kicked")

    async def stop(self, _exchange=None) -> None:  # noqa: ANN001
        """Stop the task, then link what the last requests queued (a failure leaves it for the next process)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        try:
            await self.settle()
        except Exception as exc:  # noqa: BLE001 - committed records stay queued for the next pass
            log.error("audit linking at shutdown deferred: %s", type(exc).__name__)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        started = -SPACING
        while True:
            await self._wake.wait()
            wait = started + SPACING - loop.time()
            if wait > 0:  # (the commits of the next few milliseconds share this pass)
                await asyncio.sleep(wait)
            self._wake.clear()
            started = loop.time()
            try:
                await self._cover(self._asked)
            except Exception as exc:  # noqa: BLE001 - the records stay queued; the next kick or tick links them
                log.error("audit linking deferred: %s", type(exc).__name__)
                await asyncio.sleep(1)  # (a database that is down is not hammered in a loop)


async def settle(exchange) -> None:  # noqa: ANN001
    """Return once every record committed before the call is linked (for readers of the linked log: checkpoints,
    statistics). A no-op where the audit package is not installed."""
    linker = exchange.extensions.get("audit.linker")
    if linker is not None:
        await linker.settle()


def install_kicked(exchange, linker: Linker) -> None:  # noqa: ANN001
    """Every server process links soon after its own commits (the periodic job below runs in one process only)."""
    exchange.on_start.append(linker.start)
    exchange.on_stop.insert(0, linker.stop)


def install_periodic(exchange, linker: Linker) -> None:  # noqa: ANN001
    """While the server runs, a pass every `audit_link_interval` seconds (0 turns it off), the first at start: it
    links what other processes left queued (a crash between commit and linking, the CLI, a worker)."""
    from exchange.jobs import every

    exchange.jobs.append(every("audit-linker", lambda ex: ex.settings.audit_link_interval,
                               lambda _ex: linker.settle(), at_start=True))
