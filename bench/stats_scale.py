"""How long statistics take on a large store (the scale generator's, `bench/generate.py`): the first reading of the
whole exchange log into `referral_fact`, then one statistics request per breakdown and one MeasureReport.

    .venv/bin/python bench/stats_scale.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/exchange_scale

It migrates the database (the statistics tables) and starts from the log position it finds (`--from-scratch` reads
the whole log again). Prints a table and, with --json, writes the figures.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def run(args: argparse.Namespace) -> dict:
    from sqlalchemy import delete, func, select, update

    from exchange.context import system_context
    from exchange.settings import Settings
    from exchange.stats import integrate
    from exchange.stats.aggregate import BREAKDOWNS
    from exchange.stats.measure import measure_report
    from exchange.stats.service import referral_statistics
    from exchange.stats.tables import referral_fact, stats_state
    from exchange.store.migrate import upgrade
    from exchange.store.tables import resource
    from exchange.main import build

    exchange = build(Settings(database_url=args.database_url, state_dir=Path(args.state_dir)))
    report: dict = {}
    try:
        await upgrade(exchange.db)
        async with exchange.db.transaction() as conn:
            if args.from_scratch:
                await conn.execute(delete(referral_fact))
                await conn.execute(update(stats_state).values(seq=0))
            report["tasks"] = int((await conn.execute(select(func.count()).select_from(resource).where(
                resource.c.resource_type == "Task"))).scalar() or 0)
        started = time.perf_counter()
        report["log_records_read"] = await integrate.integrate(exchange)
        report["first_integration_s"] = round(time.perf_counter() - started, 1)
        async with exchange.db.transaction() as conn:
            report["facts"] = await integrate.fact_count(conn)
        period = [("start", args.start), ("end", args.end)]
        report["requests_s"] = {}
        for breakdown in BREAKDOWNS:
            started = time.perf_counter()
            await referral_statistics(exchange, system_context(), [("by", breakdown), *period])
            report["requests_s"][breakdown] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        found = await referral_statistics(exchange, system_context(), period, median_breakdowns=tuple(BREAKDOWNS))
        measure_report(found)
        report["requests_s"]["MeasureReport"] = round(time.perf_counter() - started, 2)
        report["referrals_in_period"] = found.tables["month"].total.cells["referrals"]
    finally:
        await exchange.db.dispose()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/exchange_scale")
    parser.add_argument("--state-dir", default="var/stats-bench")
    parser.add_argument("--start", default="2025-12")
    parser.add_argument("--end", default="2026-12")
    parser.add_argument("--from-scratch", action="store_true", help="read the whole log again")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"statistics on {report['tasks']:,} Tasks ({report['referrals_in_period']:,} in the period)",
                  title_justify="left")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_row(f"first integration ({report['log_records_read']:,} Task records, {report['facts']:,} facts)",
                  str(report["first_integration_s"]))
    for name, seconds in report["requests_s"].items():
        table.add_row(f"request: {name}", str(seconds))
    Console().print(table)
    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
