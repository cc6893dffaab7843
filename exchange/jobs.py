"""Background jobs that run once per deployment, however many server processes serve it.

The notification dispatcher, the overdue sweep, the audit linker's periodic pass and the periodic checkpoint
register here (`exchange.jobs`, pairs of start/stop) instead of in `on_start`. Each server process runs a
`JobLease`: on PostgreSQL it holds a session-level advisory lock on a connection of its own while it runs the jobs;
the others try again every `jobs_lease_retry_seconds`, so when the holder stops or dies (its connection closes and
PostgreSQL releases the lock) another process takes the jobs over. SQLite is served by one process, which runs
them at once.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from sqlalchemy import text

if TYPE_CHECKING:
    from exchange.kernel.exchange import Exchange

log = logging.getLogger("exchange.jobs")
Job = Callable[["Exchange"], Awaitable[None]]


def every(name: str, interval_of: Callable[["Exchange"], float], work: Callable[["Exchange"], Awaitable[object]],
          *, at_start: bool = False) -> tuple[Job, Job]:
    """(start, stop) of a loop that runs `work` every `interval_of(exchange)` seconds (0 or less: off), the first run
    at start when `at_start`. A failure is logged by its class only (its text could quote values) and the loop goes
    on: one bad pass never stops a background job."""
    tasks: list[asyncio.Task] = []

    async def loop(exchange: "Exchange", interval: float) -> None:
        if not at_start:
            await asyncio.sleep(interval)
        while True:
            try:
                await work(exchange)
            except Exception as exc:  # noqa: BLE001 - keep going on the next tick; the failure is logged
                log.error("%s failed: %s", name, type(exc).__name__)
            await asyncio.sleep(interval)

    async def start(exchange: "Exchange") -> None:
        interval = interval_of(exchange)
        if interval > 0:
            tasks.append(asyncio.create_task(loop(exchange, interval), name=name))

    async def stop(_exchange: "Exchange") -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        tasks.clear()

    return start, stop
LEASE_KEY = 0x6A6F6273  # "jobs"


class JobLease:
    def __init__(self) -> None:
        self.holding = False
        self._conn = None
        self._task: asyncio.Task | None = None

    async def _try(self, exchange: "Exchange") -> bool:
        if exchange.db.is_sqlite:
            return True
        if self._conn is None:
            self._conn = await exchange.db.engine.connect()
            self._conn = await self._conn.execution_options(isolation_level="AUTOCOMMIT")
        got = (await self._conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEASE_KEY})).scalar()
        return bool(got)

    async def _hold(self, exchange: "Exchange") -> None:
        """Keep checking the lease: take it when it is free, give the jobs up if the lease connection is lost."""
        interval = exchange.settings.jobs_lease_retry_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                if self.holding:
                    await self._conn.execute(text("SELECT 1"))
                elif await self._try(exchange):
                    await self._start_jobs(exchange)
            except Exception as exc:  # noqa: BLE001 - a lost connection means a lost lease: stop, retry later
                log.error("job lease lost: %s", type(exc).__name__)
                await self._stop_jobs(exchange)
                await self._close()

    async def _start_jobs(self, exchange: "Exchange") -> None:
        self.holding = True
        log.info("this process runs the deployment's background jobs")
        for start, _stop in exchange.jobs:
            await start(exchange)

    async def _stop_jobs(self, exchange: "Exchange") -> None:
        if not self.holding:
            return
        self.holding = False
        for _start, stop in reversed(exchange.jobs):
            await stop(exchange)

    async def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()  # closing the session releases its advisory lock
            except Exception:  # noqa: BLE001 - the connection is gone already
                pass

    async def start(self, exchange: "Exchange") -> None:
        if not exchange.jobs:
            return
        if await self._try(exchange):
            await self._start_jobs(exchange)
        if not exchange.db.is_sqlite:
            self._task = asyncio.create_task(self._hold(exchange), name="job-lease")

    async def stop(self, exchange: "Exchange") -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self._stop_jobs(exchange)
        if self._conn is not None and not exchange.db.is_sqlite:
            try:
                await self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LEASE_KEY})
            except Exception:  # noqa: BLE001 - closing releases it anyway
                pass
        await self._close()


def install(exchange: "Exchange") -> None:
    """Run `exchange.jobs` under the deployment's lease (wired last, after every package registered its jobs)."""
    lease = JobLease()
    exchange.extensions["jobs"] = lease
    exchange.on_start.append(lease.start)
    exchange.on_stop.append(lease.stop)
