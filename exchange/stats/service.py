"""Statistics as the exchange computes them for one request: who may ask, the parameters, catching up with the
log, the report; the request is recorded in the exchange log like any other disclosure (refusals too)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

from exchange.audit import linker
from exchange.context import RequestContext
from exchange.kernel.exchange import Exchange
from exchange.stats import integrate, params, report
from exchange.stats.access import require_statistics_access
from exchange.kernel.unit import Event, open_unit

REQUEST_BATCHES = 5  # a request reads at most this many batches of new log records first (the job does the rest)


async def referral_statistics(exchange: Exchange, ctx: RequestContext, pairs: Sequence[tuple[str, str]], *,
                              names: dict[str, str] | None = None, ignored: frozenset[str] = frozenset(),
                              median_breakdowns: tuple[str, ...] | None = None,
                              now: datetime | None = None) -> report.Report:
    now = now or datetime.now(timezone.utc)
    settings = exchange.settings
    async with open_unit(exchange, ctx, "operation", "MeasureReport", read_only=True) as unit:
        require_statistics_access(ctx, settings)
        query = params.parse(pairs, now, names, ignored)
        unit.record(Event("operation", "E", "MeasureReport", query=query.as_pairs()))
    await linker.settle(exchange)  # a write answers before its record is linked; statistics read the linked log
    await integrate.integrate(exchange, max_batches=REQUEST_BATCHES)
    async with exchange.db.transaction() as conn:
        behind = await integrate.behind(conn)
        return await report.build(conn, query, now, settings.stats_small_cell_threshold,
                                  settings.stats_organization_min_referrals, behind,
                                  median_breakdowns if median_breakdowns is not None else (query.breakdown,))
