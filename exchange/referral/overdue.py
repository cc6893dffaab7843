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

import logging
import time
from datetime import datetime, timedelta
from typing import Callable

from exchange.context import system_context
from exchange.errors import FhirError
from exchange.fhir.interactions.write import replace
from exchange.fhir.search import parse_search
from exchange.ops import counters
from exchange.referral import codes, deadlines, task_states
from exchange.kernel.exchange import Exchange
from exchange.fhir.search_sql import plan_conditions, plan_order
from exchange.store import clock
from exchange.kernel.unit import open_unit

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


def is_marked(task: dict) -> bool:
    return codes.OVERDUE in codes.codes_in(task.get("businessStatus"), codes.REFERRAL_CODES)


async def scan(exchange: Exchange, name: str, pick: Callable[[dict], bool]) -> list[str]:
    """The ids of the open, sent Tasks for which `pick(body)` holds, read page by page as the exchange. A Task
    `pick` fails on is skipped and reported (its id and the error class)."""
    plan = parse_search("Task", [("status", ",".join(SWEPT_STATES))], strict=True, default_count=PAGE,
                        max_count=PAGE)
    found: list[str] = []
    offset = 0
    async with open_unit(exchange, system_context(), "search-type", "Task") as unit:
        while True:
            page, _ = await unit.repo.search("Task", plan_conditions(plan), plan_order(plan), PAGE, offset,
                                             unit.access, with_total=False)
            for task in page:
                try:
                    if pick(task.resource):
                        found.append(task.id)
                except Exception as error:  # noqa: BLE001 - a bad row is reported, the sweep goes on
                    log.warning("%s sweep skipped Task %s: %s", name, task.id, type(error).__name__)
            if len(page) < PAGE:
                break
            offset += PAGE
    return found


async def change_each(exchange: Exchange, name: str, task_ids: list[str],
                      change: Callable[[dict], dict | None]) -> int:
    """Write `change(body)` (None: nothing to do any more) as the next version of each Task, as the exchange, one
    unit each: a Task changed meanwhile is left for the next sweep. Returns how many were changed."""
    changed = 0
    for task_id in task_ids:
        try:
            async with open_unit(exchange, system_context(), "update", "Task", task_id) as unit:
                current = await unit.repo.read("Task", task_id)
                if current is None or current.resource.get("status") not in SWEPT_STATES:
                    continue
                body = change(current.resource)
                if body is None:
                    continue
                await replace(unit, current, body, current.version_id)
                changed += 1
        except FhirError as error:
            log.info("%s sweep left Task %s for later: %s", name, task_id, type(error).__name__)
        except Exception as error:  # noqa: BLE001 - a bad row is reported, the sweep goes on
            log.warning("%s sweep skipped Task %s: %s", name, task_id, type(error).__name__)
    return changed


async def sweep_overdue(exchange: Exchange, now: datetime | None = None) -> int:
    """Mark every open Task past its due time (at `now`, by default the store's clock); return how many."""
    now = now or clock.utcnow()
    after = timedelta(hours=exchange.settings.referral_overdue_hours)

    def late(task: dict) -> bool:
        due = due_at(task, after)
        return due is not None and due <= now and not is_marked(task)

    marked = await change_each(exchange, "overdue", await scan(exchange, "overdue", late),
                               lambda task: with_overdue(task) if late(task) else None)
    counters.sweep_finished("overdue", time.time())
    return marked
