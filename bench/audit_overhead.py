"""What the exchange log costs: creates/s and reads/s in process, with and without the audit hook.

Runs the create and read interactions directly (no HTTP, system context) on a fresh database, N concurrent tasks,
first with the exchange as wired (audit hook on), then with the audit hook removed, and prints both rates.

    .venv/bin/python bench/audit_overhead.py                       # SQLite in a temporary folder
    .venv/bin/python bench/audit_overhead.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench_audit
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from exchange.audit.hook import AuditLog
from exchange.context import system_context
from exchange.fhir.interactions import create, read
from exchange.settings import Settings
from exchange.store.migrate import upgrade
from exchange.main import build

PATIENT = {"resourceType": "Patient", "gender": "female",
           "identifier": [{"system": "https://hotline.example.org/case", "value": "BENCH"}]}


async def _phase(exchange, count: int, concurrency: int, work) -> float:  # noqa: ANN001
    ids: list[str] = []
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            queue.pop()
            ids.append(await work(exchange))

    started = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return count / (time.perf_counter() - started)


async def run(url: str, count: int, concurrency: int, audit: bool) -> tuple[float, float]:
    exchange = build(Settings(database_url=url))
    if not audit:
        exchange.hooks = [h for h in exchange.hooks if not isinstance(h, AuditLog)]
    await upgrade(exchange.db)
    ctx = system_context()
    created: list[str] = []

    async def do_create(ex) -> str:  # noqa: ANN001
        result = await create.create(ex, ctx, "Patient", dict(PATIENT))
        created.append(result.stored.id)
        return result.stored.id

    async def do_read(ex) -> str:  # noqa: ANN001
        rid = created[len(created) // 2]
        await read.read(ex, ctx, "Patient", rid)
        return rid

    creates = await _phase(exchange, count, concurrency, do_create)
    reads = await _phase(exchange, count, concurrency, do_read)
    await exchange.db.dispose()
    return creates, reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL URL to use (it accumulates rows across "
                                                            "rounds); default: a new SQLite file per run")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternate on/off this many times; medians shown")
    args = parser.parse_args()
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for audit in (True, False):
                url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / f'bench-{audit}-{round_}.db'}"
                results[audit].append(asyncio.run(run(url, args.count, args.concurrency, audit)))
    for audit in (True, False):
        creates = statistics.median(c for c, _ in results[audit])
        reads = statistics.median(r for _, r in results[audit])
        print(f"audit {'on ' if audit else 'off'}: {creates:7.0f} creates/s  {reads:7.0f} reads/s "
              f"(median of {args.rounds}; {args.count} each, {args.concurrency} concurrent)")


if __name__ == "__main__":
    main()
