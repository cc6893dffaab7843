"""Fixtures: a real exchange on a real database (SQLite always; PostgreSQL when EXCHANGE_TEST_POSTGRES_URL is set),
reached through real HTTP semantics via httpx's ASGI transport.

Each test gets an empty database: a fresh SQLite file, or a PostgreSQL database created for this test session and
truncated between tests.
"""
from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from exchange.app import create_app
from exchange.settings import Settings
from exchange.wiring import build

POSTGRES_URL = os.environ.get("EXCHANGE_TEST_POSTGRES_URL")  # e.g. postgresql+asyncpg://postgres@127.0.0.1/test
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
BASE = "http://127.0.0.1:8080/fhir"


def _admin_url(url: str, database: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{database}"


@pytest.fixture(scope="session")
def postgres_database():
    """A PostgreSQL database of its own for this test session (parallel runs do not collide)."""
    if not POSTGRES_URL:
        yield None
        return
    name = f"exchange_test_{uuid.uuid4().hex[:10]}"

    async def _admin(sql: str) -> None:
        engine = create_async_engine(_admin_url(POSTGRES_URL, "postgres"), isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = _admin_url(POSTGRES_URL, name)
    from exchange.store.engine import Database
    from exchange.store.migrate import upgrade

    async def _migrate() -> None:
        db = Database(url)
        await upgrade(db)
        await db.dispose()

    asyncio.run(_migrate())
    yield url
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public' "
                                       "AND tablename <> 'alembic_version'"))
        tables = [r[0] for r in rows]
        if tables:
            await conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path: Path, postgres_database) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'exchange.db'}"
    asyncio.run(_truncate(postgres_database))
    return postgres_database


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, state_dir=tmp_path / "state", host="127.0.0.1", port=8080)


@pytest.fixture
async def exchange(settings: Settings):
    return build(settings)


@pytest.fixture
async def app(settings: Settings, exchange):
    application = create_app(settings, exchange)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app):
    """An HTTP client acting as the exchange itself (system context): for tests of FHIR behaviour, not of access.

    Access control is tested with real tokens of partner, auditor and admin clients.
    """
    from exchange.auth.bearer import request_context
    from exchange.context import system_context

    app.dependency_overrides[request_context] = lambda: system_context(remote_addr="127.0.0.1")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE,
                                 headers={"Content-Type": "application/fhir+json"}) as http:
        yield http
