"""`exchange worker`: a notification dispatcher in its own process. Run several against PostgreSQL; each claims
different subscriptions (FOR UPDATE SKIP LOCKED). Stops cleanly on SIGINT/SIGTERM, finishing the delivery in flight."""
from __future__ import annotations

import asyncio
import signal
from typing import Optional

import typer

from exchange.cli_support import DatabaseOption, run_with_exchange, settings_with


def worker(database_url: Optional[str] = DatabaseOption,
           worker_id: Optional[str] = typer.Option(None, "--id", help="Name of this worker in leases and logs"),
           once: bool = typer.Option(False, "--once", help="Deliver what is due, then exit")) -> None:
    """Deliver subscription notifications from the outbox (handshakes, heartbeats, events)."""
    from exchange.notify.dispatcher import Dispatcher
    from exchange.ops.logs import configure_logging

    settings = settings_with(database_url)
    configure_logging(settings)

    async def _run(exchange) -> None:  # noqa: ANN001
        await exchange.keys.load()  # like the server: no key-encryption key, no start
        dispatcher = Dispatcher(exchange, worker_id)
        if once:
            await dispatcher.run_until_idle()
            await dispatcher.stop()
            typer.echo(f"worker {dispatcher.worker_id}: {dispatcher.delivered} notification(s) delivered, "
                       f"{dispatcher.failed} failed attempt(s); nothing else is due")
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

    asyncio.run(run_with_exchange(settings, _run, migrate=settings.migrate_on_start))


dev_app = typer.Typer(help="Tools for trying the exchange on one machine.", no_args_is_help=True)


@dev_app.command("receiver")
def receiver(port: int = typer.Option(9000, help="Port to listen on"),
             host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
             exchange_url: Optional[str] = typer.Option(
                 None, "--exchange", help="The exchange whose JWKS verifies signatures (default: EXCHANGE_PORT's)"),
             count: Optional[int] = typer.Option(None, help="Stop after this many notifications")) -> None:
    """A local notification endpoint: print each delivery and verify its signature (Ctrl-C stops it)."""
    from exchange.notify.receiver import Receiver

    base = (exchange_url or settings_with().base_url).rstrip("/")
    try:
        server = Receiver(base, host, port, on_line=lambda line: typer.echo(line))
    except OSError as exc:
        raise typer.BadParameter(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port",
                                 param_hint="--port") from None
    typer.echo(f"listening on {server.url} for notifications from {base} (signatures checked against "
               f"{base}/.well-known/jwks.json); Ctrl-C stops", err=True)
    server.start()
    try:
        while count is None or server.count < count:
            server.done.wait(0.5)
            server.done.clear()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
