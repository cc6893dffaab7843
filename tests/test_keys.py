"""Key custody (exchange.keys, exchange.custody): the exchange's private keys are sealed under the operator's
key-encryption key; a copy of the database alone cannot sign; rotation keeps old signatures verifying."""
from __future__ import annotations

import asyncio
import stat
from datetime import timedelta

import orjson
import pytest
from joserfc import jws
from pydantic import SecretStr
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import text
from typer.testing import CliRunner

from exchange.main import create_app
from exchange.audit.checkpoint import sign_checkpoint
from exchange.auth import tokens
from exchange.main import cli as cli_app
from exchange.custody import DEVELOPMENT_KEK_NAME, KeyCustodyError, generate_kek
from exchange.settings import get_settings
from exchange.store.clock import to_db, utcnow
from exchange.main import build


async def _rows(exchange, table: str) -> list[dict]:  # noqa: ANN001
    async with exchange.db.engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(text(f"SELECT * FROM {table}"))).all()]


async def _all_tables_text(exchange) -> str:  # noqa: ANN001
    """The database as a dump would hold it: every value of every table."""
    async with exchange.db.engine.connect() as conn:
        if exchange.db.is_sqlite:
            names = (await conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))).scalars().all()
        else:
            names = (await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))) \
                .scalars().all()
        parts = []
        for name in names:
            for row in (await conn.execute(text(f'SELECT * FROM "{name}"'))).all():
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


async def _start(settings):  # noqa: ANN001, ANN202
    other = build(settings)
    application = create_app(settings, other)
    async with application.router.lifespan_context(application):
        pass


def _cli(*args: str, env: dict | None = None):  # noqa: ANN202
    return CliRunner().invoke(cli_app, list(args), env=env)


async def test_a_database_dump_alone_cannot_sign(app, exchange, settings, make_org, make_client):
    partner = await make_client(await make_org())  # a token was signed, so the key exists and was used
    await sign_checkpoint(exchange)
    private = (await exchange.keys.current()).key.as_dict(private=True)
    rows = await _rows(exchange, "exchange_key")
    assert len(rows) == 1 and rows[0]["private_jwk"] is None
    public = orjson.loads(rows[0]["public_jwk"])
    assert "d" not in public and public["x"] == private["x"]
    sealed = orjson.loads(rows[0]["sealed_jwk"])
    assert set(sealed) == {"v", "kek", "dek", "nonce", "ct"}
    dump = await _all_tables_text(exchange)
    assert private["d"] not in dump and '"d"' not in dump
    assert settings.key_encryption_key.get_secret_value() not in dump

    wrong_kek = settings.model_copy(update={"key_encryption_key": SecretStr(generate_kek())})
    with pytest.raises(KeyCustodyError, match="sealed under KEK"):
        await _start(wrong_kek)
    deployed = settings.model_copy(update={"key_encryption_key": None, "public_base_url": "https://x.example.org"})
    with pytest.raises(KeyCustodyError, match="no key-encryption key"):
        await _start(deployed)
    assert (await partner.get("/Organization")).status_code == 200  # the running exchange is unaffected


async def test_without_a_kek_on_loopback_a_development_kek_is_generated_in_the_state_dir(database_url, tmp_path):
    from exchange.settings import Settings

    settings = Settings(database_url=database_url, state_dir=tmp_path / "dev-state", key_encryption_key=None)
    await _start(settings)
    path = tmp_path / "dev-state" / DEVELOPMENT_KEK_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    await _start(settings)  # the second start reuses it
    path.write_text(generate_kek())
    with pytest.raises(KeyCustodyError, match="sealed under KEK"):
        await _start(settings)


async def test_a_process_that_fails_to_start_leaves_no_connection_open(app, exchange, settings):
    """A start refused for its key-encryption key (after the schema and the keys were read) closes what it opened:
    its pool holds no connection, in use or idle (before, they stayed open, on PostgreSQL on the server and on
    SQLite until the garbage collector, whose aiosqlite thread then reported to an event loop that was gone)."""
    await exchange.keys.current()  # (the signing key exists, sealed under the running exchange's KEK)
    wrong_kek = settings.model_copy(update={"key_encryption_key": SecretStr(generate_kek())})
    failed = build(wrong_kek)
    application = create_app(wrong_kek, failed)
    with pytest.raises(KeyCustodyError):
        async with application.router.lifespan_context(application):
            pass
    pool = failed.db.engine.sync_engine.pool
    assert (pool.checkedin(), pool.checkedout()) == (0, 0)
    assert (await app.state.exchange.keys.current()).kid  # (the running exchange is unaffected)


async def test_a_key_left_in_the_clear_by_an_older_version_is_sealed_on_start(database_url, settings):
    from exchange.store.engine import Database
    from exchange.store.migrate import upgrade

    db = Database(database_url)
    await upgrade(db)
    old = ECKey.generate_key("P-256", parameters={"kid": "old-clear-key"}, private=True)
    async with db.engine.begin() as conn:
        await conn.execute(text("INSERT INTO exchange_key (kid, private_jwk, created, active) VALUES "
                                "('old-clear-key', :jwk, :created, :active)"),
                           {"jwk": orjson.dumps(old.as_dict(private=True)).decode(), "created": to_db(utcnow()),
                            "active": True})
    await db.dispose()

    exchange = build(settings)
    application = create_app(settings, exchange)
    async with application.router.lifespan_context(application):
        checkpoint = await sign_checkpoint(exchange)
        rows = await _rows(exchange, "exchange_key")
        jwks = await exchange.keys.public_jwks()
        dump = await _all_tables_text(exchange)
    assert [(r["kid"], r["private_jwk"]) for r in rows] == [("old-clear-key", None)]
    assert old.as_dict(private=True)["d"] not in dump
    found = jws.deserialize_compact(checkpoint.jws, KeySet.import_key_set(jwks), algorithms=["ES256"])
    assert found.headers()["kid"] == "old-clear-key"  # the same key signs on, now sealed


async def test_rotation_keeps_old_tokens_and_checkpoints_verifying_and_stops_a_retired_key_minting(
        app, exchange, settings, make_org, make_client):
    partner = await make_client(await make_org())
    old = await exchange.keys.current()
    before = await sign_checkpoint(exchange)
    new = await exchange.keys.rotate()
    assert new.kid != old.kid
    assert (await partner.get("/Organization")).status_code == 200  # a token of the retired key, still in its life
    second = await make_client(await make_org("Second"))
    assert jws.extract_compact(second.access_token.encode()).headers()["kid"] == new.kid
    published = (await partner.get("http://127.0.0.1:8080/.well-known/jwks.json")).json()
    assert {k["kid"] for k in published["keys"]} == {old.kid, new.kid}
    jws.deserialize_compact(before.jws, KeySet.import_key_set(published), algorithms=["ES256"])  # forever

    # Past the window (token lifetime + refresh + skew), a token made with the retired key is refused.
    async with exchange.db.engine.begin() as conn:
        await conn.execute(text("UPDATE exchange_key SET retired = :t WHERE kid = :kid"),
                           {"t": to_db(utcnow() - exchange.keys.token_window - timedelta(seconds=1)), "kid": old.kid})
    await exchange.keys.refresh()
    assert (await partner.get("/Organization")).status_code == 401  # verified before, remembered: refused now
    minted, _ = tokens.issue(old, settings, partner.client_id, partner.organization_id, "partner", "system/*.rs")
    r = await partner.get("/Organization", headers={"Authorization": f"Bearer {minted}"})
    assert r.status_code == 401
    assert (await second.get("/Organization")).status_code == 200
    jws.deserialize_compact(before.jws, KeySet.import_key_set(await exchange.keys.public_jwks()),
                            algorithms=["ES256"])


async def test_keys_cli_lists_and_rotates_without_showing_key_material(app, exchange, settings):
    first = (await exchange.keys.current()).kid
    rotated = await asyncio.to_thread(_cli, "keys", "rotate", "--database-url", settings.database_url)
    assert rotated.exit_code == 0, rotated.output
    new = rotated.output.strip()
    listed = await asyncio.to_thread(_cli, "keys", "list", "--database-url", settings.database_url)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.strip().splitlines()
    fingerprint = orjson.loads((await _rows(exchange, "exchange_key"))[0]["sealed_jwk"])["kek"]
    assert lines[0].startswith(new) and " signing " in lines[0] and f"sealed under KEK {fingerprint}" in lines[0]
    assert lines[1].startswith(first) and "verifies tokens until" in lines[1] and "checkpoints" in lines[1]
    private = (await exchange.keys.current()).key.as_dict(private=True)["d"]
    assert private not in listed.output
    get_settings.cache_clear()
    try:
        refused = await asyncio.to_thread(_cli, "keys", "list", "--database-url", settings.database_url,
                                          env={"EXCHANGE_KEY_ENCRYPTION_KEY": generate_kek()})
    finally:
        get_settings.cache_clear()
    assert refused.exit_code == 2 and "sealed under KEK" in refused.output
    await exchange.keys.refresh()
    assert (await exchange.keys.current()).kid == new  # the server's process picks the rotation up


async def test_processes_starting_together_on_a_new_database_agree_on_one_signing_key(database_url, settings):
    """`exchange serve --workers 2` on a new database: both workers find no key at once. Each making its own left
    each refusing the other's access tokens (401, "not signed by a key of this exchange") until it reloaded."""
    first, second = build(settings), build(settings)
    try:
        await asyncio.gather(first.keys.load(), second.keys.load())
        rows = await _rows(first, "exchange_key")
        assert len(rows) == 1
        assert (await first.keys.current()).kid == (await second.keys.current()).kid == rows[0]["kid"]
    finally:
        await first.db.dispose()
        await second.db.dispose()


async def test_a_token_signed_by_a_key_another_process_just_made_is_accepted_at_once(
        app, exchange, settings, make_org, make_client):
    """A rotation by one process (`exchange keys rotate`, or a worker that reloaded first): a process that has not
    reloaded yet meets a token of the new key; it reloads its keys once and accepts it, not 401 for up to
    `key_refresh_seconds`."""
    import httpx

    other = build(settings)
    other_app = create_app(settings, other)
    async with other_app.router.lifespan_context(other_app):
        before = await other.keys.current()
        new = await exchange.keys.rotate()  # this process signs with the new key; `other` still holds the old set
        partner = await make_client(await make_org())
        assert jws.extract_compact(partner.access_token.encode()).headers()["kid"] == new.kid != before.kid
        transport = httpx.ASGITransport(app=other_app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080/fhir") as http:
            r = await http.get("/Organization", headers={"Authorization": f"Bearer {partner.access_token}"})
        assert r.status_code == 200, r.text
