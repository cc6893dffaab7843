"""SQLite's WAL checkpoints, off the event loop: a task of the Database's own, its SQLite work on a worker thread.

In WAL mode a COMMIT appends the transaction's pages to the WAL; a checkpoint copies them into the database file and,
with synchronous=NORMAL, is the one moment anything is synced (the WAL, then the database file). SQLite's automatic
checkpoint runs inside the COMMIT that takes the WAL past 1,000 pages, on the connection that commits: for the
exchange on the event loop, inside the write lock every writer queues behind, where it took 57 % of COMMIT time.
So the exchange's connections turn it off (`PRAGMA wal_autocheckpoint=0`, exchange.store.engine) and, every `EVERY`
write commits (about 1,000 pages: a write transaction of the exchange appends about 20), the driver
(exchange.store.sqlite_driver) starts a checkpoint here, on a connection of its own:

1. a PASSIVE checkpoint (the kind the automatic one is), with the writers going on: it takes SQLite's checkpoint lock
   only, so it neither waits for nor blocks the writer or the readers; it copies what no read snapshot still needs
   and syncs both files. sqlite3 lets go of the GIL while SQLite works, so this runs beside the loop.
2. another, holding the process's write lock (Database's, which every writer of the process queues on, off the loop
   and without blocking it): it copies only what the writers appended during the first, so the WAL is whole in the
   database file, and then starts the WAL from its beginning again itself, by a write that changes nothing (the
   page of `user_version` rewritten: the first writer after a complete checkpoint starts the WAL again and syncs
   its new header, in its COMMIT, which would otherwise be the loop's). Without this step a checkpoint running
   beside writers never ends level with the WAL, which would then grow without end.

The WAL thus holds about `EVERY` commits' pages, as with the automatic checkpoint; writers of the process wait only
for the second step's short copy and syncs, and the event loop for none of it. Several processes (a server and the
CLI) each run their own; SQLite's checkpoint lock makes them take turns (one that finds it taken does nothing: the
next catches up). `close` (Database.dispose) waits for a running checkpoint, runs a last one and closes its
connection; the last connection to the database to close checkpoints the rest and removes the WAL, as SQLite always
does. Durability is unchanged: what a commit wrote is in the WAL, synced at the next checkpoint.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

log = logging.getLogger("exchange.store")

EVERY = 50  # write commits between checkpoints


class Checkpointer:
    """One per SQLite Database: `committed()` on the loop after each write COMMIT (a counter; every `EVERY` commits
    a checkpoint task), `close()` at the end."""

    def __init__(self, database: str, uri: bool, write_lock: asyncio.Lock) -> None:
        self._database = database
        self._uri = uri
        self._write_lock = write_lock
        self._commits = 0
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task | None = None

    def committed(self) -> None:
        self._commits += 1
        if self._commits >= EVERY and (self._task is None or self._task.done()):
            self._commits = 0
            self._task = asyncio.get_running_loop().create_task(self._checkpoint(), name="sqlite-checkpoint")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait([task])
        if self._conn is not None or self._commits:
            self._commits = 0
            await asyncio.to_thread(self._passive)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def _checkpoint(self) -> None:
        try:
            await asyncio.to_thread(self._passive)  # 1. beside the writers
            async with self._write_lock:  # 2. the rest, with no writer of this process
                await asyncio.to_thread(self._passive, True)
        except Exception as exc:  # noqa: BLE001 - the WAL waits for the next checkpoint
            log.warning("WAL checkpoint deferred: %s", type(exc).__name__)

    def _passive(self, restart: bool = False) -> None:
        """(On a worker thread, one at a time.) `restart`: when the WAL is whole in the database file, start it again
        here: the first writer after a complete checkpoint does, and writes and syncs the WAL's new header in its
        COMMIT, which would be the loop's."""
        conn = self._conn
        if conn is None:
            conn = self._conn = sqlite3.connect(self._database, uri=self._uri, isolation_level=None,
                                                check_same_thread=False)  # (one worker thread at a time uses it)
            conn.execute("PRAGMA busy_timeout=0")  # (a lock another process holds: the next checkpoint, not a wait)
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if restart and not busy and 0 < frames == copied:
            conn.execute("BEGIN IMMEDIATE")  # (a write that changes nothing: the page of user_version, rewritten)
            try:
                conn.execute(f"PRAGMA user_version={int(conn.execute('PRAGMA user_version').fetchone()[0])}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
