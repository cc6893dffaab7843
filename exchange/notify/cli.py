"""`exchange worker`: a notification dispatcher in its own process. Run several against PostgreSQL; each claims
different subscriptions (FOR UPDATE SKIP LOCKED). Stops cleanly on SIGINT/SIGTERM, finishing the delivery in flight."""
from __future__ import annotations

import asyncio
import logging
import signal
from typing import Optional

import typer


def worker(database_url: Optional[str] = typer.Option(None, "--database-url",
                                                      help="SQLAlchemy async URL (env EXCHANGE_DATABASE_URL)"),
           worker_id: Optional[str] = typer.Option(None, "--id", help="Name of this worker in leases and logs"),
           once: bool = typer.Option(False, "--once", help="Deliver what is due, then exit")) -> None:
    """Deliver subscription notifications from the outbox (handshakes, heartbeats, events)."""
    from exchange.cli import settings_with
    from exchange.notify.dispatcher import Dispatcher
    from exchange.store.migrate import upgrade
    from exchange.wiring import build

    settings = settings_with(database_url)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def _run() -> None:
        exchange = build(settings)
        try:
            if settings.migrate_on_start:
                await upgrade(exchange.db)
            dispatcher = Dispatcher(exchange, worker_id)
            if once:
                await dispatcher.run_until_idle()
                await dispatcher.stop()
                return
            loop = asyncio.get_running_loop()
            stopping = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stopping.set)
            await dispatcher.start()
            typer.echo(f"worker {dispatcher.worker_id} delivering", err=True)
            await stopping.wait()
            await dispatcher.stop()
            typer.echo(f"worker {dispatcher.worker_id} stopped: {dispatcher.delivered} delivered, "
                       f"{dispatcher.failed} failed attempts", err=True)
        finally:
            await exchange.db.dispose()

    asyncio.run(_run())
