"""Health and readiness (exchange.ops.health): unauthenticated, and saying nothing but ready or not."""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from exchange.main import create_app
from exchange.ops.health import schema_heads
from exchange.main import build
from tests.conftest import POSTGRES_URL, _admin_url

ROOT = "http://127.0.0.1:8080"


def _anonymous(app) -> httpx.AsyncClient:  # noqa: ANN001
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.9", 40000)), base_url=ROOT)


async def test_healthz_and_readyz_answer_without_a_token_and_without_detail(app):
    async with _anonymous(app) as http:
        health, ready = await http.get("/healthz"), await http.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert ready.headers["cache-control"] == "no-store"


async def test_readyz_fails_when_the_schema_is_behind_the_code(app, exchange):
    head = sorted(schema_heads())[0]
    async with exchange.db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM alembic_version WHERE version_num = :v"), {"v": head})
    try:
        async with _anonymous(app) as http:
            ready = await http.get("/readyz")
        assert (ready.status_code, ready.json()) == (503, {"status": "unavailable"})
    finally:
        async with exchange.db.engine.begin() as conn:
            await conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head})


async def _admin(sql: str) -> None:
    engine = create_async_engine(_admin_url(POSTGRES_URL, "postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(sql))
    await engine.dispose()


@pytest.fixture
async def own_database(database_url, settings):
    """A database of this test's own (it is taken away during the test): `(settings, remove)`."""
    if database_url.startswith("sqlite"):
        path = Path(make_url(database_url).database)

        async def remove() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        yield settings, remove
        return
    name = f"exchange_gone_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{name}"')

    async def drop() -> None:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    yield settings.model_copy(update={"database_url": _admin_url(POSTGRES_URL, name)}), drop
    await drop()


async def test_readyz_fails_when_the_database_is_gone_and_healthz_still_answers(own_database):
    settings, remove = own_database
    exchange = build(settings)
    application = create_app(settings, exchange)
    async with application.router.lifespan_context(application):
        async with _anonymous(application) as http:
            assert (await http.get("/readyz")).status_code == 200
            await remove()
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()) == (503, {"status": "unavailable"})
            assert (await http.get("/healthz")).status_code == 200


async def test_readyz_fails_when_the_notification_backlog_is_over_its_limit(app, exchange, system, orgs, partner):
    from tests.notify.referrals import create_referral, subscription

    r = await system.post("/Subscription", json=subscription("https://shelter.example.org/hook",
                                                            [f"Task?owner=Organization/{orgs['shelter']}"]))
    assert r.status_code == 201, r.text
    exchange.settings.ready_max_notification_backlog = 0
    async with _anonymous(app) as http:
        assert (await http.get("/readyz")).status_code == 200  # the handshake is not an event
        await create_referral(await partner(orgs["hotline"]), orgs["hotline"], orgs["shelter"])
        ready = await http.get("/readyz")  # the dispatcher is not running: the event waits
        assert (ready.status_code, ready.json()) == (503, {"status": "unavailable"})
        exchange.settings.ready_max_notification_backlog = 1
        assert (await http.get("/readyz")).status_code == 200
