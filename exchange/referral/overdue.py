"""Overdue referrals: a periodic sweep marks open Tasks past their time with businessStatus `overdue`.

A sweep (not a computed view) so that the mark is stored, searchable (`Task?business-status=...|overdue`),
versioned, audited and notified like any other change; it writes through the normal write path as the exchange
itself. Due time: the deadline the Task waits for in its status (`exchange.referral.deadlines`: the acknowledgement
while requested, the action until the service starts); a Task stored before the exchange set deadlines, authoredOn
plus `settings.referral_overdue_hours`. Drafts are not yet sent and are never overdue. The overdue coding is added to
businessStatus (its other codings and text stay); if the owner drops it while the Task is still late, the next
sweep adds it again. A Task the sweep cannot read or mark is skipped and reported (its id and the error class,
nothing of its content): one bad row never stops the sweep for every other referral.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone

from exchange.context import system_context
from exchange.errors import FhirError
from exchange.fhir.interactions.write import replace
from exchange.fhir.search import parse_search
from exchange.ops import counters
from exchange.referral import codes, deadlines, task_states
from exchange.services import Exchange
from exchange.fhir.search_sql import plan_conditions, plan_order
from exchange.unit import open_unit

log = logging.getLogger("exchange.referral.overdue")
SWEPT_STATES = sorted(task_states.OPEN_STATES - {"draft"})
PAGE = 200


def due_at(task: dict, overdue_after: timedelta) -> datetime | None:
    """The deadline the Task waits for now (`exchange.referral.deadlines.due_now`)."""
    return deadlines.due_now(task, overdue_after)


def with_overdue(task: dict) -> dict:
    status = dict(task.get("businessStatus") or {})
    status["coding"] = list(status.get("coding") or []) + [
        {"system": codes.REFERRAL_CODES, "code": codes.OVERDUE, "display": "Overdue"}]
    status.setdefault("text", "Overdue")
    return dict(task, businessStatus=status)


async def sweep_overdue(exchange: Exchange, now: datetime | None = None) -> int:
    """Mark every open Task past its due time; return how many were marked."""
    now = now or datetime.now(timezone.utc)
    after = timedelta(hours=exchange.settings.referral_overdue_hours)
    ctx = system_context()
    plan = parse_search("Task", [("status", ",".join(SWEPT_STATES))], strict=True, default_count=PAGE,
                        max_count=PAGE)
    late: list[str] = []
    offset = 0
    async with open_unit(exchange, ctx, "search-type", "Task") as unit:
        while True:
            page, _ = await unit.repo.search("Task", plan_conditions(plan), plan_order(plan), PAGE, offset,
                                             unit.access, with_total=False)
            for task in page:
                try:
                    due = due_at(task.resource, after)
                    marked = codes.OVERDUE in codes.codes_in(task.resource.get("businessStatus"),
                                                             codes.REFERRAL_CODES)
                except Exception as error:  # noqa: BLE001 - a bad row is reported, the sweep goes on
                    log.warning("overdue sweep skipped Task %s: %s", task.id, type(error).__name__)
                    continue
                if due is not None and due <= now and not marked:
                    late.append(task.id)
            if len(page) < PAGE:
                break
            offset += PAGE
    marked_count = 0
    for task_id in late:  # one unit each: a Task changed meanwhile is left for the next sweep
        try:
            async with open_unit(exchange, ctx, "update", "Task", task_id) as unit:
                current = await unit.repo.read("Task", task_id)
                if current is None or current.resource.get("status") not in SWEPT_STATES:
                    continue
                await replace(unit, current, with_overdue(current.resource), current.version_id)
                marked_count += 1
        except FhirError as error:
            log.info("overdue sweep left Task %s for later: %s", task_id, type(error).__name__)
        except Exception as error:  # noqa: BLE001 - a bad row is reported, the sweep goes on
            log.warning("overdue sweep skipped Task %s: %s", task_id, type(error).__name__)
    counters.sweep_finished("overdue", time.time())
    return marked_count


class OverdueSweeper:
    """The background loop the server runs (registered in `exchange.on_start` / `on_stop`)."""

    def __init__(self) -> None:
        self.task: asyncio.Task | None = None

    async def start(self, exchange: Exchange) -> None:
        interval = exchange.settings.referral_sweep_seconds
        if interval > 0:
            self.task = asyncio.create_task(self._loop(exchange, interval))

    async def stop(self, _exchange: Exchange) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None

    async def _loop(self, exchange: Exchange, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                count = await sweep_overdue(exchange)
                if count:
                    log.info("overdue sweep marked %d Task(s)", count)
            except Exception as error:  # noqa: BLE001 - the loop survives a failed sweep (the database restarting)
                log.error("overdue sweep failed: %s", type(error).__name__)  # no traceback: it may quote values
