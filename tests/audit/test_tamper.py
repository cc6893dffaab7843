"""Verification trusts only signed checkpoints: an insider who rewrites records with recomputed hashes, or cuts the
tail, and edits or deletes the unsigned head and checkpoint columns beside the log, is caught; records queued for
the linker when a process died are kept, reported, and linked later."""
from __future__ import annotations

import json

import orjson
import pytest
from joserfc import jws
from joserfc.jwk import ECKey
from sqlalchemy import text

from exchange.audit.chain import GENESIS, canonical, link
from tests.audit.conftest import audit_rows, cli, sql
from tests.fhir_checks import organization


@pytest.fixture
def settings(settings):  # noqa: ANN001, ANN201 - the suite's settings, without the server's periodic linker pass
    """No periodic pass: a record queued by hand stays queued until the test links it (else the server's own pass
    may link it first on a slow machine, and the "queued" report the test checks never shows)."""
    return settings.model_copy(update={"audit_link_interval": 0})


async def _events(client, n: int) -> None:  # noqa: ANN001
    for i in range(n):
        assert (await client.post("/Organization", json=organization(f"Org {i}"))).status_code == 201


async def _checkpoint(settings, path) -> dict:  # noqa: ANN001
    signed = await cli("audit", "checkpoint", "--database-url", settings.database_url)
    assert signed.exit_code == 0, signed.output
    path.write_text(signed.output)
    return json.loads(signed.output)


async def _verify(settings, *args: str):  # noqa: ANN001, ANN202
    return await cli("audit", "verify", "--database-url", settings.database_url, *args)


async def _rewrite_from(exchange, seq: int, change) -> str:  # noqa: ANN001
    """Edit record `seq` with `change(body)` and recompute every hash after it and the head: what an insider with
    write access to the database can do. Returns the new head."""
    rows = await audit_rows(exchange)
    previous = GENESIS
    for row in rows:
        body = {k: v for k, v in row.items() if k != "_seq"}
        if row["_seq"] == seq:
            change(body)
        content = canonical(body)
        previous = link(previous, row["_seq"], content)
        if row["_seq"] >= seq:
            await sql(exchange, "UPDATE audit_event SET content = :c, action = :a "
                                "WHERE entry = (SELECT entry FROM audit_chain WHERE seq = :s)",
                      c=content.decode(), a=body["action"], s=row["_seq"])
            await sql(exchange, "UPDATE audit_chain SET hash = :h WHERE seq = :s", h=previous, s=row["_seq"])
    await sql(exchange, "UPDATE audit_head SET seq = :s, hash = :h", s=rows[-1]["_seq"], h=previous)
    return previous


async def test_a_rewrite_with_recomputed_hashes_and_head_is_caught_by_the_stored_signed_checkpoint(
        client, settings, exchange, tmp_path):
    await _events(client, 3)
    await _checkpoint(settings, tmp_path / "cp.json")
    head = await _rewrite_from(exchange, 2, lambda body: body.update(action="R"))
    await sql(exchange, "UPDATE audit_checkpoint SET head_hash = :h", h=head)  # the unsigned copy, edited too
    result = await _verify(settings)
    assert result.exit_code == 1 and "FAILED at record 3: the log differs from checkpoint of tree size 3" in \
        result.output, result.output


async def test_cutting_the_tail_and_deleting_every_stored_checkpoint_is_caught_by_a_kept_one(
        client, settings, exchange, tmp_path):
    await _events(client, 3)
    await _checkpoint(settings, tmp_path / "kept.json")  # the auditor keeps this one
    await sql(exchange, "DELETE FROM audit_event WHERE entry = (SELECT entry FROM audit_chain WHERE seq = 3)")
    await sql(exchange, "DELETE FROM audit_chain WHERE seq = 3")
    await sql(exchange, "UPDATE audit_head SET seq = 2, hash = (SELECT hash FROM audit_chain WHERE seq = 2)")
    await sql(exchange, "DELETE FROM audit_checkpoint")
    jwks = await cli("audit", "jwks", "--database-url", settings.database_url)
    (tmp_path / "jwks.json").write_text(jwks.output)
    result = await _verify(settings, "--checkpoint", str(tmp_path / "kept.json"), "--jwks", str(tmp_path / "jwks.json"))
    assert result.exit_code == 1 and "checkpoint of tree size 3 is beyond the end of the log" in result.output, \
        result.output


async def test_deleting_the_unsigned_head_row_does_not_hide_a_rewrite(client, settings, exchange, tmp_path):
    await _events(client, 2)
    kept = await _checkpoint(settings, tmp_path / "kept.json")
    await _rewrite_from(exchange, 1, lambda body: body.update(action="D"))
    await sql(exchange, "DELETE FROM audit_head")
    await sql(exchange, "DELETE FROM audit_checkpoint")
    result = await _verify(settings, "--checkpoint", kept["checkpoint"])
    assert result.exit_code == 1 and "the log differs from checkpoint of tree size 2" in result.output, result.output


async def test_a_checkpoint_not_signed_by_the_published_keys_fails(client, settings, exchange, tmp_path):
    await _events(client, 2)
    await _checkpoint(settings, tmp_path / "cp.json")
    head = await _rewrite_from(exchange, 2, lambda body: body.update(action="R"))
    forger = ECKey.generate_key("P-256", parameters={"kid": "forged"}, private=True)
    payload = {"iss": settings.base_url, "tree_size": 2, "head": head, "time": "2026-12-01T00:00:00.000Z"}
    forged = jws.serialize_compact({"alg": "ES256", "kid": "forged", "typ": "audit-checkpoint+jws"},
                                   orjson.dumps(payload, option=orjson.OPT_SORT_KEYS), forger)
    await sql(exchange, "UPDATE audit_checkpoint SET jws = :j, head_hash = :h", j=forged, h=head)
    result = await _verify(settings)
    assert result.exit_code == 1 and "a stored checkpoint does not verify with the published keys" in result.output
    assert (await _verify(settings, "--checkpoint", forged)).exit_code == 1


async def test_the_public_checkpoint_is_the_statement_as_signed(client, settings, exchange, tmp_path):
    await _events(client, 2)
    signed = await _checkpoint(settings, tmp_path / "cp.json")
    await sql(exchange, "UPDATE audit_checkpoint SET head_hash = :h", h="f" * 64)
    published = (await client.get("http://127.0.0.1:8080/.well-known/audit-checkpoint",
                                  params={"tree_size": 2})).json()
    payload = json.loads(jws.extract_compact(published["checkpoint"].encode()).payload)
    assert published["head"] == payload["head"] == signed["head"] != "f" * 64
    assert published["tree_size"] == payload["tree_size"] == 2 and published["time"] == payload["time"]


async def test_records_queued_when_a_process_died_are_reported_then_linked(client, settings, exchange):
    from exchange.main import create_app
    from exchange.audit.builder import records_for_events
    from exchange.audit.hook import enqueue
    from exchange.context import system_context
    from exchange.kernel.unit import Event
    from exchange.main import build

    await _events(client, 2)
    await exchange.extensions["audit.linker"].settle()  # this server's own pass for them is done, and none is due
    records = records_for_events(system_context(), "read", [Event("read", "R", "Organization", "x", 1)],
                                 settings.base_url)
    async with exchange.db.transaction() as conn:  # committed, and the process "dies" before linking
        await enqueue(conn, records)
    queued = await _verify(settings)
    assert queued.exit_code == 0 and "ok: 2 records verified; 1 record queued, not yet linked" in queued.output, \
        queued.output
    restarted = build(settings)  # a process starting later links what it finds queued
    app = create_app(settings, restarted)
    async with app.router.lifespan_context(app):
        await restarted.extensions["audit.linker"].settle()
    linked = await _verify(settings)
    assert linked.exit_code == 0 and "ok: 3 records verified" in linked.output and "queued" not in linked.output
    async with exchange.db.engine.connect() as conn:
        window = (await conn.execute(text("SELECT count(*) FROM audit_event AS e WHERE NOT EXISTS "
                                          "(SELECT 1 FROM audit_chain AS c WHERE c.entry = e.entry)"))).scalar()
        queued = (await conn.execute(text("SELECT count(*) FROM audit_queue"))).scalar()
    assert window == 0 and queued == 0
