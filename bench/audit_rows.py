"""PostgreSQL's CPU per audit record, the log alone: records inserted as requests insert them (8 a lifecycle, in 5
transactions as bench/lifecycle.py's steps: 4, 1, 1, 1, 1) with a linker pass after each, on a fresh database of
its own (dropped and created anew), after a preload and VACUUM ANALYZE; three rounds of 500 lifecycles. Compare two
versions by running the other checkout's exchange package (PYTHONPATH=<checkout>): the CPU counted is the
database's own backends and the server's processes (bench/load.py database_cpu), so others' load counts less.

    .venv/bin/python bench/audit_rows.py auditrows_micro 8000
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/audit_rows.py auditrows_micro_old 8000
"""
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from load import database_cpu, database_cpu_since  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine
from exchange.store.engine import Database
from exchange.store.migrate import upgrade
from exchange.audit.builder import records_for_events
from exchange.audit import hook
from exchange.audit.tables import audit_event
from exchange.store.writes import Pending
from exchange.audit.linker import link_pass
from exchange.context import system_context
from exchange.kernel.unit import Event

QUEUED = (hook.QUEUED,) if hasattr(hook, "QUEUED") else ()  # (before migration 1100: no queue rows)
NAME = sys.argv[1]
URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{NAME}"
PRELOAD = int(sys.argv[2]) if len(sys.argv) > 2 else 20000


async def main():
    admin = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as c:
        await c.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        await c.execute(text(f'CREATE DATABASE "{NAME}"'))
    await admin.dispose()
    db = Database(URL)
    await upgrade(db)
    ctx = system_context()
    ents = [Event("search-type", "E", "Task", f"t{i}", 1) for i in range(12)]
    def recs(n):
        return [r for _ in range(n) for r in records_for_events(ctx, "search-type", ents[:], "http://x")][:n]
    size = len(recs(1)[0].content)
    async def lifecycles(n):
        for _ in range(n):
            for k in (4, 1, 1, 1, 1):  # 8 records in 5 requests, a pass after each
                async with db.transaction() as conn:  # as a unit's flush adds them (`AuditLog.before_commit`)
                    pending = Pending()
                    pending.add_rows(audit_event, [hook._row(r) for r in recs(k)], *QUEUED)
                    await pending.write(conn)
                async with db.transaction() as conn:
                    await link_pass(conn)
    await lifecycles(PRELOAD // 8)
    async with db.engine.connect() as c:
        await c.execute(text("COMMIT"))
        await c.execute(text("VACUUM ANALYZE"))
    await asyncio.sleep(1)
    for rnd in range(3):
        before = database_cpu(NAME)
        n = 500
        await lifecycles(n)
        cpu = database_cpu_since(NAME, before)
        print(f"{NAME}: record {size} B, round {rnd}: PostgreSQL CPU {1000 * cpu / n:.2f} ms a lifecycle (8 records), {1000 * cpu / n / 8:.3f} ms a record")
    await db.dispose()

asyncio.run(main())
