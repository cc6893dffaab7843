"""Overdue referrals: the sweep marks open Tasks past the deadline they wait for (businessStatus), through the write
path, at a simulated clock (`sweep_overdue(now=...)`)."""
from __future__ import annotations

from datetime import timedelta

from exchange.referral import codes
from exchange.referral.overdue import sweep_overdue

from .conftest import change_task, deadlines_of

MINUTE = timedelta(minutes=1)


def _overdue(task: dict) -> bool:
    return codes.OVERDUE in codes.codes_in(task.get("businessStatus"), codes.REFERRAL_CODES)


async def test_open_task_past_its_acknowledgement_deadline_becomes_overdue(http, as_, ids, make_referral, exchange):
    ref = await make_referral()
    done = await make_referral()
    shelter = as_(ids["shelter"])
    for status in ("accepted", "completed"):
        extra = {"output": [{"type": {"text": "done"}, "valueString": "Admitted"}]} if status == "completed" else {}
        assert (await change_task(http, shelter, done["Task"], status=status, **extra)).status_code == 200
    acknowledge, action = await deadlines_of(http, ref["Task"])
    assert await sweep_overdue(exchange, now=acknowledge - MINUTE) == 0
    assert await sweep_overdue(exchange, now=acknowledge + MINUTE) == 1
    task = (await http.get(f"/Task/{ref['Task']}", headers=as_(ids["hotline"]))).json()
    assert _overdue(task) and task["meta"]["versionId"] == "2" and task["status"] == "requested"
    found = (await http.get("/Task", params={"business-status": f"{codes.REFERRAL_CODES}|{codes.OVERDUE}"},
                            headers=as_(ids["hotline"]))).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [ref["Task"]]
    assert await sweep_overdue(exchange, now=action + MINUTE) == 0  # marked once
    done_task = (await http.get(f"/Task/{done['Task']}")).json()
    assert "businessStatus" not in done_task  # a closed referral is never overdue
    # the owner can still act on an overdue Task
    assert (await change_task(http, shelter, ref["Task"], status="accepted")).status_code == 200


async def test_an_acknowledged_task_waits_for_its_action_deadline_and_a_started_one_for_none(
        http, as_, ids, make_referral, exchange):
    received = await make_referral()
    started = await make_referral()
    shelter = as_(ids["shelter"])
    assert (await change_task(http, shelter, received["Task"], status="received")).status_code == 200
    for status in ("accepted", "in-progress"):
        assert (await change_task(http, shelter, started["Task"], status=status)).status_code == 200
    acknowledge, action = await deadlines_of(http, received["Task"])
    assert await sweep_overdue(exchange, now=acknowledge + MINUTE) == 0
    assert await sweep_overdue(exchange, now=action + MINUTE) == 1
    assert _overdue((await http.get(f"/Task/{received['Task']}")).json())
    assert not _overdue((await http.get(f"/Task/{started['Task']}")).json())


async def test_a_task_stored_before_deadlines_falls_back_to_authored_on(http, make_referral, exchange):
    from datetime import datetime, timezone

    import orjson
    from sqlalchemy import update

    from exchange.referral import deadlines
    from exchange.store.tables import resource

    old = await make_referral()
    async with exchange.db.engine.begin() as conn:  # a Task stored before the exchange set deadlines
        row = (await conn.execute(resource.select().where(resource.c.id == old["Task"]))).first()
        content = deadlines.with_stored(orjson.loads(row.content), None, None)
        await conn.execute(update(resource).where(resource.c.id == old["Task"])
                           .values(content=orjson.dumps(content).decode()))
    authored = datetime(2026, 11, 20, 10, 5, tzinfo=timezone.utc)  # world.task authoredOn
    hours = timedelta(hours=exchange.settings.referral_overdue_hours)
    assert await sweep_overdue(exchange, now=authored + hours - MINUTE) == 0
    assert await sweep_overdue(exchange, now=authored + hours + MINUTE) == 1


async def test_a_due_date_at_the_end_of_the_calendar_does_not_stop_the_sweep(http, as_, ids, make_referral, exchange):
    far = await make_referral()
    late = await make_referral()
    task = (await http.get(f"/Task/{far['Task']}")).json()
    far_away = [e for e in task["extension"] if e["url"] != codes.EXT_ACKNOWLEDGE_DUE] + [
        {"url": codes.EXT_ACKNOWLEDGE_DUE, "valueDateTime": "9999-12-31T23:59:59Z"}]
    r = await http.put(f"/Task/{far['Task']}", json=dict(task, extension=far_away,  # the exchange itself may
                                                           restriction={"period": {"end": "9999-12-31"}}))
    assert r.status_code == 200, r.text
    acknowledge, _ = await deadlines_of(http, late["Task"])
    assert await sweep_overdue(exchange, now=acknowledge + MINUTE) == 1
    assert _overdue((await http.get(f"/Task/{late['Task']}")).json())
    assert "businessStatus" not in (await http.get(f"/Task/{far['Task']}")).json()


async def test_a_stored_task_the_sweep_cannot_read_is_skipped_and_reported(http, make_referral, exchange, caplog):
    import orjson
    from sqlalchemy import update

    from exchange.store.tables import resource

    bad, late = await make_referral(), await make_referral()
    async with exchange.db.engine.begin() as conn:  # a row written before today's validation rules
        row = (await conn.execute(resource.select().where(resource.c.id == bad["Task"]))).first()
        content = orjson.loads(row.content) | {"restriction": ["not", "a", "restriction"]}
        await conn.execute(update(resource).where(resource.c.id == bad["Task"])
                           .values(content=orjson.dumps(content).decode()))
    acknowledge, _ = await deadlines_of(http, late["Task"])
    with caplog.at_level("WARNING", logger="exchange.referral.overdue"):
        assert await sweep_overdue(exchange, now=acknowledge + MINUTE) == 1
    assert f"skipped Task {bad['Task']}" in caplog.text
    assert _overdue((await http.get(f"/Task/{late['Task']}")).json())
