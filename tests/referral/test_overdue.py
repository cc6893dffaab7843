"""Overdue referrals: the sweep marks open Tasks past their time (businessStatus), through the write path."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from exchange.referral import codes
from exchange.referral.overdue import sweep_overdue

from .conftest import change_task

AUTHORED = datetime(2026, 11, 20, 10, 5, tzinfo=timezone.utc)  # world.task authoredOn


async def test_open_task_past_its_time_becomes_overdue(http, as_, ids, make_referral, exchange):
    ref = await make_referral()
    done = await make_referral()
    shelter = as_(ids["shelter"])
    for status in ("accepted", "completed"):
        extra = {"output": [{"type": {"text": "done"}, "valueString": "Admitted"}]} if status == "completed" else {}
        assert (await change_task(http, shelter, done["Task"], status=status, **extra)).status_code == 200
    hours = exchange.settings.referral_overdue_hours
    assert await sweep_overdue(exchange, now=AUTHORED + timedelta(hours=hours - 1)) == 0
    assert await sweep_overdue(exchange, now=AUTHORED + timedelta(hours=hours + 1)) == 1
    task = (await http.get(f"/Task/{ref['Task']}", headers=as_(ids["hotline"]))).json()
    assert codes.OVERDUE in [c["code"] for c in task["businessStatus"]["coding"]]
    assert task["meta"]["versionId"] == "2" and task["status"] == "requested"
    found = (await http.get("/Task", params={"business-status": f"{codes.REFERRAL_CODES}|{codes.OVERDUE}"},
                            headers=as_(ids["hotline"]))).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [ref["Task"]]
    assert await sweep_overdue(exchange, now=AUTHORED + timedelta(hours=hours + 2)) == 0  # marked once
    done_task = (await http.get(f"/Task/{done['Task']}")).json()
    assert "businessStatus" not in done_task  # a closed referral is never overdue
    # the owner can still act on an overdue Task
    assert (await change_task(http, shelter, ref["Task"], status="accepted")).status_code == 200


async def test_requesters_due_date_wins(http, as_, ids, make_referral, exchange):
    ref = await make_referral()
    due = AUTHORED + timedelta(hours=6)
    r = await change_task(http, as_(ids["hotline"]), ref["Task"],
                          restriction={"period": {"end": due.isoformat().replace("+00:00", "Z")}})
    assert r.status_code == 200, r.text
    assert await sweep_overdue(exchange, now=due - timedelta(minutes=1)) == 0
    assert await sweep_overdue(exchange, now=due + timedelta(minutes=1)) == 1


async def test_a_due_date_at_the_end_of_the_calendar_does_not_stop_the_sweep(http, as_, ids, make_referral, exchange):
    far = await make_referral()
    late = await make_referral()
    r = await change_task(http, as_(ids["hotline"]), far["Task"], restriction={"period": {"end": "9999-12-31"}})
    assert r.status_code == 200, r.text
    hours = exchange.settings.referral_overdue_hours
    assert await sweep_overdue(exchange, now=AUTHORED + timedelta(hours=hours + 1)) == 1
    assert codes.OVERDUE in codes.codes_in((await http.get(f"/Task/{late['Task']}")).json().get("businessStatus"),
                                           codes.REFERRAL_CODES)
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
    hours = exchange.settings.referral_overdue_hours
    with caplog.at_level("WARNING", logger="exchange.referral.overdue"):
        assert await sweep_overdue(exchange, now=AUTHORED + timedelta(hours=hours + 1)) == 1
    assert f"skipped Task {bad['Task']}" in caplog.text
    assert codes.OVERDUE in codes.codes_in((await http.get(f"/Task/{late['Task']}")).json().get("businessStatus"),
                                           codes.REFERRAL_CODES)
