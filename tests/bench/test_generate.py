"""The scale generator (bench/generate.py): what it loads is, to the exchange, what the exchange itself stores.

One small generated database (PostgreSQL only: the generator loads by COPY) for the whole module, reached as users
reach it: partners and the auditor with real tokens over HTTP (in-process ASGI), and `exchange audit verify`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import text

from tests.conftest import POSTGRES_URL, _admin_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # the benchmark's modules (bench/ is a folder of scripts, not a package)
REFERRALS = 60
pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="the generator loads PostgreSQL by COPY")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Generate REFERRALS referrals across 6 organisations (a quarter still open) into a database of its own."""
    name = f"exchange_gen_{uuid.uuid4().hex[:10]}"
    url = _admin_url(POSTGRES_URL, name)
    state = tmp_path_factory.mktemp("scale")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), "--referrals", str(REFERRALS),
                          "--organisations", "6", "--open-share", "0.25", "--batch", "7", "--database-url", url,
                          "--state-dir", str(state), "--quiet", "--json", str(state / "report.json")],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    yield url, state, orjson.loads((state / "report.json").read_bytes())
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    async def drop() -> None:
        engine = create_async_engine(_admin_url(POSTGRES_URL, "postgres"), isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()

    asyncio.run(drop())


def _world(state: Path):  # noqa: ANN202
    from generate import load_world

    return load_world(state / "world.json")


@asynccontextmanager
async def _exchange(url: str, state: Path):
    """The exchange on the generated database, and `client(party, scope)`: an HTTP client with a real token."""
    from exchange.main import create_app
    from exchange.settings import Settings
    from exchange.main import build
    from lifecycle import assertion

    settings = Settings(database_url=url, state_dir=state / "var", host="127.0.0.1", port=8080)
    exchange = build(settings)
    app = create_app(settings, exchange)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    clients: list[httpx.AsyncClient] = []

    async def client(party, scope: str = "system/*.cruds") -> httpx.AsyncClient:  # noqa: ANN001
        token_url = "http://127.0.0.1:8080/auth/token"
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as raw:
            r = await raw.post("/auth/token", data={
                "grant_type": "client_credentials", "scope": scope,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion(party.client_id, party.key, token_url)})
        assert r.status_code == 200, r.text
        http = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080/fhir", headers={
            "Authorization": f"Bearer {r.json()['access_token']}", "Content-Type": "application/fhir+json"})
        clients.append(http)
        return http

    async with app.router.lifespan_context(app):
        try:
            yield exchange, client
        finally:
            for http in clients:
                await http.aclose()


async def _tasks(exchange) -> list[dict]:  # noqa: ANN001
    async with exchange.db.engine.connect() as conn:
        return [orjson.loads(c) for c in (await conn.execute(text(
            "SELECT content FROM resource WHERE resource_type = 'Task'"))).scalars()]


def _verify(url: str, state: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exchange.main", "audit", "verify", "--database-url", url],
                          capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, EXCHANGE_STATE_DIR=str(state / "var")))


def test_generated_log_verifies_against_its_signed_checkpoint(generated):
    url, state, report = generated
    out = _verify(url, state)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"ok: {report['audit_records']} records verified against 1 signed checkpoint" in out.stdout


async def test_generated_rows_are_the_rows_the_exchange_derives(generated):
    """Every generated resource's index rows are what the exchange's indexer makes of its body (and carry its
    last_updated), its current row is its newest version, and a referral's parties are its sender and its
    receiver."""
    from exchange.fhir.indexing import index_rows
    from exchange.store.clock import to_db

    url, state, report = generated
    world = _world(state)
    service_org = {s.service_id: s.organization_id for s in world.shelters}
    async with _exchange(url, state) as (exchange, _client):
        async with exchange.db.engine.connect() as conn:
            current = (await conn.execute(text(
                "SELECT r.resource_type, r.id, r.content, r.version_id, v.content AS newest FROM resource r "
                "JOIN resource_version v ON v.resource_type = r.resource_type AND v.id = r.id AND "
                "v.version_id = r.version_id WHERE r.resource_type IN ('Patient', 'Consent', 'ServiceRequest', "
                "'Task')"))).all()
            times = {(r.resource_type, r.id): r.last_updated for r in (await conn.execute(text(
                "SELECT resource_type, id, last_updated FROM resource"))).all()}
            index = {}
            for row in (await conn.execute(text("SELECT * FROM search_index"))).all():
                assert row.last_updated == times[(row.resource_type, row.resource_id)]  # (its resource's)
                index.setdefault((row.resource_type, row.resource_id), set()).add(
                    (row.param, row.system, row.value, row.text, row.date_start, row.date_end))
            parties = {}
            for row in (await conn.execute(text("SELECT * FROM resource_party"))).all():
                parties.setdefault((row.resource_type, row.resource_id), set()).add(row.organization_id)
    assert len(current) == 4 * REFERRALS
    for row in current:
        body = orjson.loads(row.content)
        assert row.content == row.newest and body["meta"]["versionId"] == str(row.version_id)
        derived = {(r.param, r.system, r.value, r.text, to_db(r.date_start) if r.date_start else None,
                    to_db(r.date_end) if r.date_end else None) for r in index_rows(row.resource_type, body)}
        assert index[(row.resource_type, row.id)] == derived
        if row.resource_type == "Task":
            sender = body["requester"]["reference"].split("/")[1]
            receiver = service_org[body["owner"]["reference"].split("/")[1]]
            assert parties[("Task", row.id)] == {sender, receiver}


async def test_shelter_inbox_search_finds_exactly_its_generated_referrals(generated):
    url, state, _ = generated
    world = _world(state)
    async with _exchange(url, state) as (exchange, client):
        tasks = await _tasks(exchange)
        shelter = max(world.shelters, key=lambda s: sum(t["owner"]["reference"].endswith(s.service_id)
                                                        for t in tasks))
        http = await client(shelter)
        owner = f"HealthcareService/{shelter.service_id}"
        r = await http.get("/Task", params={"owner": owner, "_sort": "-_lastUpdated", "_count": "500"})
        assert r.status_code == 200, r.text
        found = [e["resource"] for e in r.json().get("entry", [])]
        expected = [t for t in tasks if t["owner"]["reference"] == owner]
        assert expected and sorted(t["id"] for t in found) == sorted(t["id"] for t in expected)
        stamps = [t["meta"]["lastUpdated"] for t in found]
        assert stamps == sorted(stamps, reverse=True)
        r = await http.get("/Task", params={"owner": owner, "status": "completed", "_include": "Task:focus"})
        entries = r.json().get("entry", [])
        matches = [e["resource"] for e in entries if e["search"]["mode"] == "match"]
        included = {e["resource"]["id"] for e in entries if e["search"]["mode"] == "include"}
        assert matches and all(t["status"] == "completed" for t in matches)
        assert included == {t["focus"]["reference"].split("/")[1] for t in matches}


async def test_organisation_not_party_to_a_generated_referral_does_not_see_it(generated):
    url, state, _ = generated
    world = _world(state)
    async with _exchange(url, state) as (exchange, client):
        task = (await _tasks(exchange))[0]
        owner = task["owner"]["reference"].split("/")[1]
        outsider = next(s for s in world.shelters if s.service_id != owner)
        http = await client(outsider)
        assert (await http.get(f"/Task/{task['id']}")).status_code == 404
        assert (await http.get(f"/ServiceRequest/{task['focus']['reference'].split('/')[1]}")).status_code == 404


async def test_accepting_a_generated_referral_extends_its_verified_chain(generated):
    """The shelter accepts a generated open referral as it would any other: the exchange continues the generated
    chain, and the auditor finds the referral's whole history in the log."""
    url, state, _ = generated
    world = _world(state)
    async with _exchange(url, state) as (exchange, client):
        async with exchange.db.engine.connect() as conn:
            before = (await conn.execute(text("SELECT seq FROM audit_head"))).scalar()
        task = next(t for t in await _tasks(exchange) if t["status"] == "requested")
        shelter = next(s for s in world.shelters if task["owner"]["reference"].endswith(s.service_id))
        http = await client(shelter)
        r = await http.put(f"/Task/{task['id']}", content=orjson.dumps(dict(task, status="accepted")),
                           headers={"If-Match": 'W/"1"'})
        assert r.status_code == 200, r.text
        auditor = await client(world.auditor, "system/AuditEvent.rs")
        r = await auditor.get("/AuditEvent", params={"entity": f"Task/{task['id']}", "_sort": "date"})
        changes = [e["subtype"][0]["code"] for e in (e["resource"] for e in r.json()["entry"]) if e["action"] in "CU"]
        assert changes == ["create", "update"]
        from exchange.audit import linker
        from exchange.audit.verify import verify_database

        await linker.settle(exchange)  # a request answers before its record is linked
        verdict = await verify_database(exchange)
    # after the generated records: two token requests, the update, the auditor's search
    assert (verdict.ok, verdict.checked, verdict.unlinked) == (True, before + 4, 0), str(verdict)
