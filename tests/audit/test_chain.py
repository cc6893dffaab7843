"""Tamper evidence: the chain verifies untouched, and an edited, deleted or reordered row is named; checkpoints
verify with the published key; an export and two checkpoints prove a segment whole; a failed audit write leaves
nothing behind."""
from __future__ import annotations

import asyncio
import json

import orjson
import pytest
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import text

from tests.audit.conftest import audit_rows, cli, sql
from tests.fhir_checks import organization


async def _some_events(client, settings, n: int = 3) -> list[str]:  # noqa: ANN001
    """`n` requests, and their records linked (a write answers before its record is linked: `exchange audit link`
    links what is queued, as the server's own linker does moments later)."""
    ids = []
    for i in range(n):
        r = await client.post("/Organization", json=organization(f"Org {i}"))
        assert r.status_code == 201
        ids.append(r.json()["id"])
    await _link(settings)
    return ids


async def _link(settings) -> None:  # noqa: ANN001
    linked = await cli("audit", "link", "--database-url", settings.database_url)
    assert linked.exit_code == 0 and linked.output.startswith("linked "), linked.output


async def _delete_record(exchange, seq: int) -> None:  # noqa: ANN001
    """Delete record `seq` and its chain position, as an insider with write access to the database can."""
    await sql(exchange, f"DELETE FROM audit_event WHERE entry = (SELECT entry FROM audit_chain WHERE seq = {seq})")
    await sql(exchange, f"DELETE FROM audit_chain WHERE seq = {seq}")


async def _verify(settings):  # noqa: ANN001, ANN202
    return await cli("audit", "verify", "--database-url", settings.database_url)


async def test_an_untouched_log_verifies(client, settings, exchange):
    await _some_events(client, settings, 4)
    result = await _verify(settings)
    assert result.exit_code == 0, result.output
    assert "ok: 4 records verified" in result.output


async def test_editing_a_row_is_detected_and_named(client, settings, exchange):
    await _some_events(client, settings, 4)
    rows = await audit_rows(exchange)
    edited = dict(rows[2])
    edited.pop("_seq")
    edited["action"] = "R"
    await sql(exchange, "UPDATE audit_event SET content = :c "
                        "WHERE entry = (SELECT entry FROM audit_chain WHERE seq = 3)",
              c=orjson.dumps(edited, option=orjson.OPT_SORT_KEYS).decode())
    result = await _verify(settings)
    assert result.exit_code == 1
    assert "FAILED at record 3: hash does not match" in result.output


async def test_editing_only_a_search_column_is_detected(client, settings, exchange):
    await _some_events(client, settings, 3)
    await sql(exchange, "UPDATE audit_event SET organization_id = 'someone-else' WHERE "
                        "entry = (SELECT entry FROM audit_chain WHERE seq = 2)")
    result = await _verify(settings)
    assert result.exit_code == 1 and "FAILED at record 2: column organization_id" in result.output


async def test_deleting_a_row_is_detected_and_named(client, settings, exchange):
    await _some_events(client, settings, 4)
    await _delete_record(exchange, 2)
    result = await _verify(settings)
    assert result.exit_code == 1 and "FAILED at record 2: record 2 is missing" in result.output


async def test_deleting_only_a_record_leaving_its_chain_position_is_detected(client, settings, exchange):
    await _some_events(client, settings, 4)
    await sql(exchange, "DELETE FROM audit_event WHERE entry = (SELECT entry FROM audit_chain WHERE seq = 2)")
    result = await _verify(settings)
    assert result.exit_code == 1 and "FAILED at record 2: record 2 is missing" in result.output


async def test_deleting_the_newest_row_is_detected(client, settings, exchange):
    await _some_events(client, settings, 3)
    await _delete_record(exchange, 3)
    result = await _verify(settings)
    assert result.exit_code == 1 and "FAILED at record 3: the chain head says 3 records" in result.output


async def test_reordering_rows_is_detected_and_named(client, settings, exchange):
    await _some_events(client, settings, 4)
    for statement in ("UPDATE audit_chain SET seq = -2 WHERE seq = 2", "UPDATE audit_chain SET seq = 2 WHERE seq = 3",
                      "UPDATE audit_chain SET seq = 3 WHERE seq = -2"):
        await sql(exchange, statement)
    result = await _verify(settings)
    assert result.exit_code == 1 and "FAILED at record 2: hash does not match" in result.output


async def test_concurrent_writers_keep_one_unbroken_chain(client, settings, exchange):
    results = await asyncio.gather(*[client.post("/Organization", json=organization(f"Org {i}")) for i in range(20)])
    assert all(r.status_code == 201 for r in results)
    await _link(settings)
    result = await _verify(settings)
    assert result.exit_code == 0 and "ok: 20 records" in result.output, result.output


async def test_a_signed_checkpoint_verifies_with_the_published_key(client, settings, exchange):
    await _some_events(client, settings, 2)
    signed = await cli("audit", "checkpoint", "--database-url", settings.database_url)
    assert signed.exit_code == 0, signed.output
    printed = json.loads(signed.output)
    published = (await client.get("http://127.0.0.1:8080/.well-known/audit-checkpoint")).json()
    assert published["checkpoint"] == printed["checkpoint"] and published["tree_size"] == 2
    assert published["jwks_uri"] == "http://127.0.0.1:8080/.well-known/jwks.json"
    assert (await client.get(published["jwks_uri"])).json() == published["jwks"]  # the same keys, one source
    keys = KeySet.import_key_set(published["jwks"])
    found = jws.deserialize_compact(published["checkpoint"], keys, algorithms=["ES256"])
    header, payload = found.headers(), json.loads(found.payload)
    assert header["alg"] == "ES256" and header["kid"] == published["jwks"]["keys"][0]["kid"]
    assert payload["tree_size"] == 2 and payload["head"] == published["head"] and payload["time"]
    tampered = published["checkpoint"].rsplit(".", 1)[0] + ".AAAA" + published["checkpoint"].rsplit(".", 1)[1][4:]
    with pytest.raises(JoseError):
        jws.deserialize_compact(tampered, keys, algorithms=["ES256"])


async def test_the_log_no_longer_matches_a_checkpoint_after_a_rewrite(client, settings, exchange):
    """Rewriting the whole chain consistently (and its head) is still caught by the signed checkpoint."""
    await _some_events(client, settings, 2)
    assert (await cli("audit", "checkpoint", "--database-url", settings.database_url)).exit_code == 0
    await _delete_record(exchange, 2)
    await sql(exchange, "UPDATE audit_head SET seq = 1, hash = (SELECT hash FROM audit_chain WHERE seq = 1)")
    result = await _verify(settings)
    assert result.exit_code == 1 and "checkpoint of tree size 2 is beyond the end of the log" in result.output


async def test_an_export_between_two_checkpoints_proves_nothing_was_removed_or_altered(client, settings, exchange,
                                                                                       tmp_path):
    url = settings.database_url
    await _some_events(client, settings, 2)
    first = (await cli("audit", "checkpoint", "--database-url", url)).output
    await _some_events(client, settings, 3)
    second = (await cli("audit", "checkpoint", "--database-url", url)).output
    (tmp_path / "a.json").write_text(first)
    (tmp_path / "b.json").write_text(second)
    jwks = await cli("audit", "jwks", "--database-url", url)
    (tmp_path / "jwks.json").write_text(jwks.output)
    exported = await cli("audit", "export", "--since", "2000", "--output", str(tmp_path / "log.ndjson"),
                         "--database-url", url)
    assert exported.exit_code == 0, exported.output
    lines = (tmp_path / "log.ndjson").read_text().splitlines()
    assert len(lines) == 5

    async def verify_export(name: str):  # noqa: ANN202
        return await cli("audit", "verify-export", str(tmp_path / name), "--checkpoint", str(tmp_path / "a.json"),
                         "--checkpoint", str(tmp_path / "b.json"), "--jwks", str(tmp_path / "jwks.json"))

    good = await verify_export("log.ndjson")
    assert good.exit_code == 0 and "ok: 3 records verified" in good.output, good.output

    (tmp_path / "removed.ndjson").write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    removed = await verify_export("removed.ndjson")
    assert removed.exit_code == 1 and "FAILED at record 4: record is missing" in removed.output
    altered_event = json.loads(lines[3])
    altered_event["outcome"] = "4"
    (tmp_path / "altered.ndjson").write_text("\n".join(lines[:3] + [json.dumps(altered_event)] + lines[4:]) + "\n")
    altered = await verify_export("altered.ndjson")
    assert altered.exit_code == 1 and "FAILED at record 4: hash does not match" in altered.output
    (tmp_path / "other-key.json").write_text(json.dumps({"keys": []}))
    wrong_key = await cli("audit", "verify-export", str(tmp_path / "log.ndjson"), "--checkpoint",
                          str(tmp_path / "a.json"), "--checkpoint", str(tmp_path / "b.json"), "--jwks",
                          str(tmp_path / "other-key.json"))
    assert wrong_key.exit_code == 1 and "does not verify" in wrong_key.output


async def _install_failing_trigger(exchange) -> None:
    if exchange.db.is_sqlite:
        await sql(exchange, "CREATE TRIGGER audit_fails BEFORE INSERT ON audit_event "
                            "BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END")
    else:
        await sql(exchange, "CREATE FUNCTION audit_fails() RETURNS trigger AS $$ BEGIN "
                            "RAISE EXCEPTION 'audit store unavailable'; END $$ LANGUAGE plpgsql")
        await sql(exchange, "CREATE TRIGGER audit_fails BEFORE INSERT ON audit_event "
                            "FOR EACH ROW EXECUTE FUNCTION audit_fails()")


async def _remove_failing_trigger(exchange) -> None:
    if exchange.db.is_sqlite:
        await sql(exchange, "DROP TRIGGER audit_fails")
    else:
        await sql(exchange, "DROP TRIGGER audit_fails ON audit_event")
        await sql(exchange, "DROP FUNCTION audit_fails()")


async def test_a_failed_audit_write_fails_the_request_and_leaves_nothing(client, exchange, settings):
    await _some_events(client, settings, 2)
    await _install_failing_trigger(exchange)
    try:
        r = await client.post("/Organization", json=organization("Never stored"))  # the app answers 500
        assert r.status_code == 500 and r.json()["resourceType"] == "OperationOutcome"
        assert "Never stored" not in r.text
        search = await client.get("/Organization")  # would record two returned resources as entities
        assert search.status_code == 500
    finally:
        await _remove_failing_trigger(exchange)
    async with exchange.db.engine.connect() as conn:
        names = (await conn.execute(text("SELECT content FROM resource"))).scalars().all()
        entities = (await conn.execute(text("SELECT count(*) FROM audit_entity"))).scalar()
        head = (await conn.execute(text("SELECT seq FROM audit_head"))).scalar()
    assert not any("Never stored" in c for c in names)
    assert len(names) == 2 and entities == 0 and head == 2  # only the first two requests' resources and records
    assert len(await audit_rows(exchange)) == 2
    assert (await _verify(settings)).exit_code == 0


async def test_the_server_signs_checkpoints_periodically(settings):
    from exchange.main import create_app
    from exchange.audit.checkpoint import stored_checkpoint
    from exchange.main import build

    fast = settings.model_copy(update={"audit_checkpoint_interval": 0.05})
    exchange = build(fast)
    app = create_app(fast, exchange)
    async with app.router.lifespan_context(app):
        for _ in range(400):  # wait for the background task (bounded), no assertion on how long it took
            if await stored_checkpoint(exchange) is not None:
                break
            await asyncio.sleep(0.025)
        signed = await stored_checkpoint(exchange)
    assert signed is not None and signed.tree_size == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "audit-checkpoint"]  # stopped with the server


async def test_two_processes_writing_at_once_keep_one_unbroken_chain(client, settings, exchange):
    """Two exchanges (two engines, as two server processes) append concurrently: each one's remembered head is
    often stale, and the chain must still come out whole."""
    from exchange.context import system_context
    from exchange.fhir.interactions import create
    from exchange.main import build

    other = build(settings)
    await _some_events(client, settings, 1)
    try:
        async def write(ex, i: int) -> None:  # noqa: ANN001
            await create.create(ex, system_context(), "Organization", organization(f"Org {i}"))

        await asyncio.gather(*[write(exchange if i % 2 else other, i) for i in range(24)])
    finally:
        await other.db.dispose()
    await _link(settings)
    result = await _verify(settings)
    assert result.exit_code == 0 and "ok: 25 records" in result.output, result.output


async def test_an_http_export_verifies_against_published_checkpoints(client, exchange):
    from exchange.audit.verify import verify_segment

    await _some_events(client, exchange.settings, 1)
    first = (await client.get("http://127.0.0.1:8080/.well-known/audit-checkpoint")).json()
    await _some_events(client, exchange.settings, 2)
    assert (await cli("audit", "checkpoint", "--database-url", exchange.settings.database_url)).exit_code == 0
    second = (await client.get("http://127.0.0.1:8080/.well-known/audit-checkpoint")).json()
    again = (await client.get("http://127.0.0.1:8080/.well-known/audit-checkpoint",
                              params={"tree_size": first["tree_size"]})).json()
    assert again["checkpoint"] == first["checkpoint"] and second["tree_size"] == 3
    exported = await client.get("/AuditEvent/$export")
    lines = exported.text.splitlines()
    verdict = verify_segment(lines, first["checkpoint"], second["checkpoint"], second["jwks"])
    assert verdict.ok and verdict.checked == 2, str(verdict)
    assert not verify_segment(lines[:1] + lines[2:], first["checkpoint"], second["checkpoint"], second["jwks"]).ok
    missing = await client.get("http://127.0.0.1:8080/.well-known/audit-checkpoint", params={"tree_size": 99})
    assert missing.status_code == 404


async def test_a_write_answers_while_the_linker_waits_and_its_record_is_linked_afterwards(client, settings, exchange):
    """The request's transaction commits its record unlinked and answers; linking follows (here held up by an
    operator's session holding the linker's lock, PostgreSQL), `exchange audit verify` reports it queued meanwhile,
    and a pass links it into the same unbroken chain."""
    from exchange.audit.linker import LOCK_KEY

    if exchange.db.is_sqlite:
        pytest.skip("SQLite: the linker's lock is the database's write lock, which nothing can hold without "
                    "holding up the write itself")
    await _some_events(client, settings, 1)
    async with exchange.db.engine.connect() as held:
        await held.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
        try:
            answered = await asyncio.wait_for(client.post("/Organization", json=organization("Late")), 60)
            assert answered.status_code == 201
            queued = await _verify(settings)
            assert queued.exit_code == 0 and "ok: 1 records verified; 1 record queued, not yet linked" in \
                queued.output, queued.output
        finally:
            await held.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            await held.commit()
    await _link(settings)
    linked = await _verify(settings)
    assert linked.exit_code == 0 and "ok: 2 records verified" in linked.output and "queued" not in linked.output
