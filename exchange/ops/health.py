"""`GET /healthz` (the process answers) and `GET /readyz` (it can serve: database reachable, schema current, signing
key loaded, notification backlog and audit records waiting to be linked within their limits).

Both are unauthenticated, for load balancers and orchestrators, so they say only ready or not: which check failed
goes to the server's log (and to the metrics), never to the caller.
"""
from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from pathlib import Path
from typing import Awaitable, Callable

from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.ops import gauges
from exchange.kernel.exchange import Exchange
from exchange.store.migrate import alembic_config

log = logging.getLogger("exchange.ops")
router = APIRouter(tags=["operations"])
NO_STORE = {"Cache-Control": "no-store"}

Check = Callable[[Exchange, AsyncConnection], Awaitable[bool]]


@lru_cache(maxsize=1)
def schema_heads() -> frozenset[str]:
    """The newest revision of every migration branch this code ships."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


async def _schema_current(_exchange: Exchange, conn: AsyncConnection) -> bool:
    applied = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    return frozenset(applied) == schema_heads()


async def _signing_key(exchange: Exchange, _conn: AsyncConnection) -> bool:
    return exchange.keys.loaded


async def _notification_backlog(exchange: Exchange, conn: AsyncConnection) -> bool:
    backlog = await gauges.read(exchange, gauges.NOTIFICATION_BACKLOG, conn)
    return backlog.pending <= exchange.settings.ready_max_notification_backlog


async def _audit_queue(exchange: Exchange, conn: AsyncConnection) -> bool:
    waiting = await gauges.read(exchange, gauges.AUDIT_UNLINKED, conn)
    return waiting is None or waiting <= exchange.settings.ready_max_audit_unlinked


CHECKS: dict[str, Check] = {
    "schema": _schema_current,
    "signing-key": _signing_key,
    "notification-backlog": _notification_backlog,
    "audit-queue": _audit_queue,
}


def _sqlite_file_present(exchange: Exchange) -> bool:
    """SQLite opens (and so creates) a missing file: a vanished database file must count as unreachable."""
    database = make_url(exchange.db.url).database
    return not database or database == ":memory:" or Path(database).exists()


async def readiness(exchange: Exchange) -> dict[str, bool]:
    """Every check's verdict, `database` first; a check that raises or outlasts the time-out has failed."""
    results = {"database": False} | {name: False for name in CHECKS}

    async def run() -> None:
        if exchange.db.is_sqlite and not _sqlite_file_present(exchange):
            return
        async with exchange.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            results["database"] = True
            for name, check in CHECKS.items():
                try:
                    results[name] = bool(await check(exchange, conn))
                except Exception as exc:  # noqa: BLE001 - a failed check is a verdict, not an error
                    log.warning("readiness check %s raised %s", name, type(exc).__name__)
                    await conn.rollback()

    try:
        await asyncio.wait_for(run(), exchange.settings.ready_timeout_seconds)
    except Exception as exc:  # noqa: BLE001 - unreachable database, time-out: not ready
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
    return results


@router.get("/healthz", include_in_schema=True, summary="Liveness: the process answers")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


@router.get("/readyz", summary="Readiness: database, schema, signing key and notification backlog are fine")
async def readyz(request: Request) -> JSONResponse:
    results = await readiness(request.app.state.exchange)
    failed = [name for name, ok in results.items() if not ok]
    if failed:
        log.warning("not ready: %s", ", ".join(failed))
        return JSONResponse({"status": "unavailable"}, status_code=503, headers=NO_STORE)
    return JSONResponse({"status": "ready"}, headers=NO_STORE)
