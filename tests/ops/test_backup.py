"""Backup and restore (exchange.ops.backup, `exchange backup` / `exchange restore`): a copy restored into a fresh
database verifies against the checkpoint an auditor kept before, and serves the restored referrals."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import orjson
from joserfc import jws
from joserfc.jwk import KeySet
from sqlalchemy import text
from typer.testing import CliRunner

from exchange.main import create_app
from exchange.audit.checkpoint import sign_checkpoint
from exchange.main import cli as cli_app
from exchange.main import build
from tests.conftest import BASE, POSTGRES_URL, _admin_url, make_assertion
from tests.notify.referrals import create_referral
from tests.ops.test_health import _admin

ROOT = "http://127.0.0.1:8080"


async def cli(*args: str):  # noqa: ANN201
    return await asyncio.to_thread(CliRunner().invoke, cli_app, list(args))


async def test_backup_restored_into_a_fresh_database_verifies_and_serves_the_referrals(
        app, exchange, settings, database_url, tmp_path, orgs, partner):
    hotline = await partner(orgs["hotline"])
    referral = await create_referral(hotline, orgs["hotline"], orgs["shelter"])
    await sign_checkpoint(exchange)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ROOT) as http:
        kept = (await http.get("/.well-known/audit-checkpoint")).json()  # what an auditor keeps

    dump = tmp_path / "exchange.backup"
    made = await cli("backup", "--output", str(dump), "--database-url", database_url)
    assert made.exit_code == 0, made.output
    again = await cli("backup", "--output", str(dump), "--database-url", database_url)
    assert again.exit_code == 2 and "exists" in again.output

    if database_url.startswith("sqlite"):
        restored_url = f"sqlite+aiosqlite:///{tmp_path / 'restored.db'}"
    else:
        name = f"exchange_restored_{uuid.uuid4().hex[:8]}"
        await _admin(f'CREATE DATABASE "{name}"')
        restored_url = _admin_url(POSTGRES_URL, name)
    try:
        put = await cli("restore", str(dump), "--database-url", restored_url)
        assert put.exit_code == 0, put.output
        (tmp_path / "kept-checkpoint.json").write_bytes(orjson.dumps(kept))
        (tmp_path / "kept-jwks.json").write_bytes(orjson.dumps(kept["jwks"]))
        verified = await cli("audit", "verify", "--checkpoint", str(tmp_path / "kept-checkpoint.json"),
                             "--jwks", str(tmp_path / "kept-jwks.json"), "--database-url", restored_url)
        assert verified.exit_code == 0 and verified.output.startswith("ok:"), verified.output
        assert "signed checkpoints" in verified.output  # the kept one among them

        # The kept checkpoint (signature by the key published then, size, head) matches the restored log.
        found = jws.deserialize_compact(kept["checkpoint"], KeySet.import_key_set(kept["jwks"]), algorithms=["ES256"])
        signed = orjson.loads(found.payload)
        restored_settings = settings.model_copy(update={"database_url": restored_url,
                                                        "state_dir": tmp_path / "restored-state"})
        served = build(restored_settings)
        restored_app = create_app(restored_settings, served)
        async with restored_app.router.lifespan_context(restored_app):
            async with served.db.engine.connect() as conn:
                head = (await conn.execute(text("SELECT hash FROM audit_chain WHERE seq = :n"),
                                           {"n": signed["tree_size"]})).scalar_one()
            assert head == signed["head"] == kept["head"]

            transport = httpx.ASGITransport(app=restored_app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url=ROOT) as raw:
                r = await raw.post("/auth/token", data={
                    "grant_type": "client_credentials", "scope": "system/Task.rs system/Patient.rs",
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": make_assertion(hotline.client_id, hotline.key, f"{ROOT}/auth/token")})
                assert r.status_code == 200, r.text
                bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
                task = await raw.get(f"{BASE}/Task/{referral['task']['id']}", headers=bearer)
                patient = await raw.get(f"{BASE}/Patient/{referral['patient']['id']}", headers=bearer)
            assert task.status_code == 200 and task.json() == referral["task"]
            assert patient.status_code == 200 and patient.json() == referral["patient"]
            jwks = await served.keys.public_jwks()
            assert {k["kid"] for k in kept["jwks"]["keys"]} <= {k["kid"] for k in jwks["keys"]}
        await served.db.dispose()
    finally:
        if not database_url.startswith("sqlite"):
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
