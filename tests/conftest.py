"""Fixtures: a real exchange on a real database (SQLite always; PostgreSQL when EXCHANGE_TEST_POSTGRES_URL is set),
reached through real HTTP semantics via httpx's ASGI transport.

Each test gets an empty database at the newest schema: a fresh SQLite file (a copy of one migrated once per session),
or a PostgreSQL database created and migrated once per test session and emptied between tests.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from exchange.main import create_app
from exchange.custody import generate_kek
from exchange.settings import Settings
from exchange.main import build

# One key-encryption key for the whole run, so the app under test and the CLI run beside it (which reads its
# settings from the environment) open the same sealed keys. Tests of key custody pass their own.
os.environ.setdefault("EXCHANGE_KEY_ENCRYPTION_KEY", generate_kek())
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


# Emptying every table with DELETE (foreign keys not checked: everything goes) and restarting the sequences leaves
# the same empty database as TRUNCATE ... RESTART IDENTITY CASCADE, several times faster for tables this small.
_EMPTY = """DO $$ DECLARE r record; BEGIN
  SET LOCAL session_replication_role = replica;
  FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version' LOOP
    EXECUTE format('DELETE FROM %I', r.tablename);
  END LOOP;
  FOR r IN SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' LOOP
    EXECUTE format('ALTER SEQUENCE %I RESTART', r.sequencename);
  END LOOP;
END $$"""


async def _truncate(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(_EMPTY))
    await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file migrated once for the session; each SQLite test starts from a copy of it."""
    from exchange.store.engine import Database
    from exchange.store.migrate import upgrade

    path = tmp_path_factory.mktemp("template") / "exchange.db"

    async def _migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await upgrade(db)
        await db.dispose()

    asyncio.run(_migrate())
    assert not Path(f"{path}-wal").exists()  # checkpointed on close: the one file is the whole database
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path: Path, postgres_database) -> str:
    if request.param == "sqlite":
        path = tmp_path / "exchange.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    asyncio.run(_truncate(postgres_database))
    return postgres_database


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, state_dir=tmp_path / "state", host="127.0.0.1", port=8080)


@pytest.fixture
def dns():
    """The exchange's DNS in this test (tests/dns.py): `dns.set(name, [addresses], ...)`, `dns.calls`."""
    from tests.dns import FakeDns

    return FakeDns()


@pytest.fixture
async def exchange(settings: Settings, dns):
    from exchange.egress import egress

    built = build(settings)
    egress(built).resolver = dns.resolve
    yield built
    await built.db.dispose()  # (as the app's shutdown does: SQLite's held connections too, exchange.store.engine)


@pytest.fixture
async def app(settings: Settings, exchange):
    application = create_app(settings, exchange)
    async with application.router.lifespan_context(application):
        yield application


SYSTEM_HEADER = "X-Test-System-Context"


async def _system_or_bearer(request: Request):  # noqa: ANN201
    """Test-only replacement of the caller dependency: the `client` fixture's requests act as the exchange."""
    from exchange.auth.bearer import bearer_context
    from exchange.context import system_context

    if request.headers.get(SYSTEM_HEADER) == "1":
        return system_context(remote_addr="127.0.0.1")
    return await bearer_context(request)


@pytest.fixture
async def client(app):
    """An HTTP client acting as the exchange itself (system context): for tests of FHIR behaviour, not of access.

    Only this client's requests (they carry a test-only header) get the system context; every other request to the
    same app still needs a real bearer token, so `client` and `make_client` can be used in the same test.
    Access control is tested with real tokens of partner, auditor and admin clients (`make_client`).
    """
    from exchange.kernel.caller import request_context

    app.dependency_overrides[request_context] = _system_or_bearer
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE,
                                 headers={"Content-Type": "application/fhir+json", SYSTEM_HEADER: "1"}) as http:
        yield http


@pytest.fixture
async def make_org(app, exchange):
    """`await make_org("Safe Haven Shelter", kind="shelter")` -> the id of a new directory Organization.

    Created by the exchange itself (like `exchange orgs add`), so it needs no token. `kind` is one of the demo kinds
    (hotline, shelter, clinic, legal-aid, counselling, livelihood, police, social-services, ngo, other).
    """
    from exchange.organizations import add_organization, organization_resource

    async def _make(name: str = "Test organisation", kind: str = "ngo", identifier: str | None = None) -> str:
        return await add_organization(exchange, organization_resource(name, kind, identifier))

    return _make


def make_assertion(client_id: str, key, token_url: str, alg: str = "ES384", lifetime: int = 120,  # noqa: ANN001
                   **overrides) -> str:
    """A SMART Backend Services client assertion signed with `key` (a joserfc key with a kid)."""
    import time

    from joserfc import jwt

    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + lifetime, "iat": now,
              "jti": uuid.uuid4().hex}
    claims.update(overrides)
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


@pytest.fixture
async def make_client(app, exchange):
    """`await make_client(organization_id, role="partner", scopes="system/*.cruds")` -> an httpx.AsyncClient.

    The client talks to the same ASGI app (base_url http://127.0.0.1:8080/fhir, Content-Type application/fhir+json)
    with a REAL access token: the fixture generates an ES384 key, registers a client for the organisation with that
    role and those scopes, signs a client assertion itself and gets the token from POST /auth/token, exactly as a
    partner system would. `request_scopes` asks for fewer scopes than registered (default: all registered).
    The returned client carries `.client_id`, `.organization_id`, `.access_token` and `.key` (the private joserfc
    key) for tests that need them. Roles: partner | auditor | admin (exchange/auth/access.py).
    """
    from joserfc.jwk import ECKey

    from exchange.auth.service import auth_service

    service = auth_service(exchange)
    clients: list[httpx.AsyncClient] = []
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000), raise_app_exceptions=False)

    async def _make(organization_id: str, role: str = "partner", scopes: str = "system/*.cruds",
                    request_scopes: str | None = None) -> httpx.AsyncClient:
        key = ECKey.generate_key("P-384", parameters={"kid": uuid.uuid4().hex}, private=True)
        record = await service.registry.add(organization_id, role, scopes,
                                            jwks={"keys": [key.as_dict(private=False)]})
        assertion = make_assertion(record.client_id, key, service.urls.token)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as raw:
            r = await raw.post("/auth/token", data={
                "grant_type": "client_credentials", "scope": request_scopes or scopes,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        http = httpx.AsyncClient(transport=transport, base_url=BASE, headers={
            "Content-Type": "application/fhir+json", "Authorization": f"Bearer {token}"})
        http.client_id, http.organization_id, http.access_token, http.key = (  # type: ignore[attr-defined]
            record.client_id, organization_id, token, key)
        clients.append(http)
        return http

    yield _make
    for http in clients:
        await http.aclose()
