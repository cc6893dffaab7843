"""Two writes of the same version: one succeeds, the other is refused (412 when it named the version with If-Match,
409 when it did not), and nothing of the refused one is stored: not its version, not its index rows, not its audit
record of a change. An update's row move is written with the rest of its unit (exchange.store.writes
`Pending.move`), so the refusal comes from the unit's flush; on PostgreSQL the tests make both writers reach that
flush before either can move the row, by holding the row's lock from a transaction of their own until both wait."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.audit.conftest import audit_rows, references
from tests.fhir_checks import assert_outcome, organization


async def _create(client, name: str) -> dict:  # noqa: ANN001
    r = await client.post("/Organization", json=organization(name))
    assert r.status_code == 201, r.text
    return r.json()


async def _put(client, org: dict, name: str, if_match: bool = True):  # noqa: ANN001, ANN202
    headers = {"If-Match": f'W/"{org["meta"]["versionId"]}"'} if if_match else {}
    return await client.put(f"/Organization/{org['id']}", json={**org, "name": name}, headers=headers)


def _bundle(*changes: tuple[dict, str]) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {**org, "name": name},
         "request": {"method": "PUT", "url": f"Organization/{org['id']}", "ifMatch": f'W/"{org["meta"]["versionId"]}"'}}
        for org, name in changes]}


async def _names(client, name: str) -> int:  # noqa: ANN001
    """How many Organizations the search index finds by `name`."""
    return (await client.get("/Organization", params={"name:exact": name})).json()["total"]


async def _versions(client, org: dict) -> int:  # noqa: ANN001
    return (await client.get(f"/Organization/{org['id']}/_history")).json()["total"]


async def _raced(settings, exchange, org_ids: list[str], writes) -> list:  # noqa: ANN001
    """Run `writes` (coroutines) together. On PostgreSQL, a transaction of the test's own holds the rows of
    `org_ids` locked until every writer waits for a lock (each has read the version, run the rules and reached its
    flush), then lets them go: one moves the row, the other finds it moved on. SQLite runs its writers one at a
    time (each holds the write lock from its first statement), so there the second reads the first's version."""
    if exchange.db.is_sqlite:
        return list(await asyncio.gather(*writes))
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as holder:
            await holder.execute(text("SELECT 1 FROM resource WHERE resource_type = 'Organization' AND id = ANY(:ids) "
                                      "FOR UPDATE"), {"ids": org_ids})
            tasks = [asyncio.ensure_future(w) for w in writes]
            for _ in range(2000):  # (each pass a few milliseconds: bounded, so a writer that never waits fails)
                waiting = (await holder.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"))).scalar()
                if waiting >= len(tasks) or any(t.done() for t in tasks):
                    break
                await asyncio.sleep(0.005)
            assert not any(t.done() for t in tasks), [t.result().text for t in tasks if t.done()]
            await holder.rollback()
            return list(await asyncio.gather(*tasks))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("if_match, refusal", [(True, 412), (False, 409)])
async def test_two_updates_of_one_version_one_wins_and_nothing_of_the_other_is_stored(client, settings, exchange,
                                                                                         if_match, refusal):
    org = await _create(client, "Before")
    results = await _raced(settings, exchange, [org["id"]],
                           [_put(client, org, "First", if_match), _put(client, org, "Second", if_match)])
    codes = sorted(r.status_code for r in results)
    if exchange.db.is_sqlite and not if_match:
        assert codes == [200, 200]  # (one after the other: the second replaced the first's version)
        return
    assert codes == [200, refusal], [r.text for r in results]
    winner, loser = sorted(results, key=lambda r: r.status_code)
    assert_outcome(loser, refusal)
    stored = (await client.get(f"/Organization/{org['id']}")).json()
    assert stored["meta"]["versionId"] == "2" and stored["name"] == winner.json()["name"]
    assert await _versions(client, org) == 2
    other = "Second" if stored["name"] == "First" else "First"
    assert await _names(client, stored["name"]) == 1 and await _names(client, other) == 0
    assert await _names(client, "Before") == 0
    changes = [e for e in await audit_rows(exchange) if e["action"] == "U" and e["outcome"] == "0"
               and any(r.startswith(f"Organization/{org['id']}") for r in references(e))]
    assert len(changes) == 1 and references(changes[0]) == [f"Organization/{org['id']}/_history/2"], changes


async def test_a_transaction_that_loses_one_of_its_updates_stores_none_of_them(client, settings, exchange):
    first, second = await _create(client, "First before"), await _create(client, "Second before")
    results = await _raced(settings, exchange, [second["id"]], [
        client.post("", json=_bundle((first, "First by the Bundle"), (second, "Second by the Bundle"))),
        _put(client, second, "Second alone")])
    bundle, alone = results
    assert sorted(r.status_code for r in results) == [200, 412], [r.text for r in results]
    stored_first = (await client.get(f"/Organization/{first['id']}")).json()
    stored_second = (await client.get(f"/Organization/{second['id']}")).json()
    if bundle.status_code == 200:
        assert_outcome(alone, 412)
        assert (stored_first["name"], stored_second["name"]) == ("First by the Bundle", "Second by the Bundle")
        assert await _versions(client, first) == 2
    else:  # the lone update won: the Bundle's update of the other Organization is not stored either
        assert_outcome(bundle, 412)
        assert (stored_first["name"], stored_second["name"]) == ("First before", "Second alone")
        assert stored_first["meta"]["versionId"] == "1" and await _versions(client, first) == 1
        assert await _names(client, "First by the Bundle") == 0 and await _names(client, "First before") == 1
    assert stored_second["meta"]["versionId"] == "2" and await _versions(client, second) == 2


async def test_a_transaction_of_several_updates_writes_each_once(client, exchange):
    orgs = [await _create(client, f"Org {n}") for n in range(3)]
    r = await client.post("", json=_bundle(*((org, f"Org {n} changed") for n, org in enumerate(orgs))))
    assert r.status_code == 200, r.text
    assert [e["response"]["status"] for e in r.json()["entry"]] == ["200 OK"] * 3
    for n, org in enumerate(orgs):
        stored = (await client.get(f"/Organization/{org['id']}")).json()
        assert stored["meta"]["versionId"] == "2" and stored["name"] == f"Org {n} changed"
        assert await _versions(client, org) == 2
        assert await _names(client, f"Org {n} changed") == 1 and await _names(client, f"Org {n}") == 0
    current = (await client.get(f"/Organization/{orgs[0]['id']}")).json()
    stale = await client.post("", json=_bundle((current, "again"), (orgs[1], "no")))
    assert_outcome(stale, 412)  # (its first entry is current, its second stale: neither is stored)
    assert (await client.get(f"/Organization/{orgs[0]['id']}")).json()["meta"]["versionId"] == "2"
    assert await _names(client, "again") == 0
