"""The `exchange` command line, the root command: serve, db, orgs, openapi, conformance, and each package's own
sub-commands mounted under it. The helpers every command shares are in `exchange/cli_support.py`."""
from __future__ import annotations

import asyncio
from typing import Optional

import typer

from exchange.audit.cli import app as audit_app
from exchange.auth.cli import clients_app
from exchange.cli_support import DatabaseOption, build_exchange, run_with_exchange, settings_with
from exchange.console import ExchangeGroup
from exchange.demo.cli import clients_demo, demo_app
from exchange.keys_cli import keys_app
from exchange.notify.cli import dev_app, worker
from exchange.ops.cli import backup, restore
from exchange.organizations import ORG_KINDS
from exchange.settings import export_settings
from exchange.stats.cli import stats
from exchange.web.cli import staff_app

app = typer.Typer(cls=ExchangeGroup, no_args_is_help=True,
                  help="GBV referral exchange: a FHIR R4 gateway for referrals between organisations.")
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
orgs_app = typer.Typer(help="The directory of organisations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(orgs_app, name="orgs")
# each package's own sub-commands (they share exchange/cli_support.py and never import this module)
app.add_typer(clients_app, name="clients")
clients_app.command("demo")(clients_demo)  # the demo wing's, mounted here so auth/ does not import the demo
app.add_typer(audit_app, name="audit")
app.add_typer(staff_app, name="staff")
app.add_typer(keys_app, name="keys")
app.command("backup")(backup)
app.command("restore")(restore)
app.command("stats")(stats)
app.command("worker")(worker)
app.add_typer(demo_app, name="demo")
app.add_typer(dev_app, name="dev")


@app.command()
def serve(host: Optional[str] = typer.Option(None, help="Interface to listen on (default 127.0.0.1)"),
          port: Optional[int] = typer.Option(None, help="Port (default 8080)"),
          database_url: Optional[str] = DatabaseOption,
          demo: bool = typer.Option(False, "--demo", help="Load the demo organisations before serving"),
          workers: int = typer.Option(1, "--workers", min=1, help="Server processes (PostgreSQL only); background "
                                                                   "jobs run in one of them")) -> None:
    """Run the exchange's HTTP server."""
    import uvicorn

    from exchange.app import create_app, uvicorn_config

    settings = settings_with(database_url, host=host, port=port)
    if workers > 1 and settings.is_sqlite:
        raise typer.BadParameter("SQLite is served by one process; use PostgreSQL for --workers",
                                 param_hint="--workers")
    from exchange.ops.logs import configure_logging

    configure_logging(settings)

    async def _prepare(exchange):  # noqa: ANN001, ANN202  (the database answers and is migrated before serving)
        if not demo:
            return None
        from exchange.console import progress
        from exchange.demo.clients import instructions, register_demo_clients
        from exchange.demo.staff import register_demo_staff, staff_instructions

        with progress("loading the demo directory, story, clients and staff"):
            clients = await register_demo_clients(exchange)
            staff = await register_demo_staff(exchange, clients)
        return instructions(exchange, clients) + "\n" + staff_instructions(exchange, staff)

    said = asyncio.run(run_with_exchange(settings, _prepare))
    if said:
        typer.echo(said)
    typer.echo(f"FHIR base: {settings.fhir_base_url}   (GET {settings.fhir_base_url}/metadata)")
    if workers > 1:  # each worker process builds its app from the same settings, passed on as EXCHANGE_* values
        from exchange.ops.metrics import prepare_multiprocess

        if settings.metrics_multiprocess_dir is None:  # a scrape of any worker counts the requests of all
            settings = settings.model_copy(update={"metrics_multiprocess_dir": settings.state_dir / "metrics"})
        prepare_multiprocess(settings)
        export_settings(settings, migrate_on_start=False)  # migrated once, above
        uvicorn.run("exchange.app:worker_app", factory=True, workers=workers, host=settings.host,
                    port=settings.port, access_log=False, log_level="info", log_config=None,
                    timeout_worker_healthcheck=60)  # a worker still importing on a busy machine is not dead
        return
    application = create_app(settings, build_exchange(settings))
    uvicorn.Server(uvicorn_config(application, settings)).run()


@db_app.command("upgrade")
def db_upgrade(database_url: Optional[str] = DatabaseOption) -> None:
    """Apply the migrations the database lacks (the server does the same on start)."""
    from exchange.store.migrate import upgrade

    applied = asyncio.run(run_with_exchange(settings_with(database_url), lambda exchange: upgrade(exchange.db),
                                            migrate=False))
    if applied:
        typer.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}; the database is up to date")
    else:
        typer.echo("the database was already up to date: nothing to apply")


def _known_kind(kind: str) -> str:
    if kind not in ORG_KINDS:
        raise typer.BadParameter(f"'{kind}' is not a kind of organisation; use one of {', '.join(ORG_KINDS)}")
    return kind


@orgs_app.command("add")
def orgs_add(name: str = typer.Option(..., help="The organisation's name"),
             kind: str = typer.Option("other", "--type", callback=_known_kind,
                                      help=f"The kind of organisation: {', '.join(ORG_KINDS)}"),
             identifier: Optional[str] = typer.Option(None, help="system|value identifier"),
             database_url: Optional[str] = DatabaseOption) -> None:
    """Create an Organization in the directory and print its id."""
    from exchange.organizations import add_organization, organization_resource

    body = organization_resource(name, kind, identifier)
    org_id = asyncio.run(run_with_exchange(settings_with(database_url),
                                        lambda exchange: add_organization(exchange, body)))
    typer.echo(org_id)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def conformance(ctx: typer.Context) -> None:
    """The partner conformance kit against a deployment (the same as `python -m conformance`; --help lists options)."""
    from conformance.cli import main

    raise typer.Exit(main(list(ctx.args)))


@app.command()
def openapi(output: str = typer.Option("openapi.yaml", help="Where to write the OpenAPI document")) -> None:
    """Write the OpenAPI description of the HTTP API (openapi.yaml at the repository root)."""
    from exchange.openapi_doc import write_openapi

    write_openapi(output)
    typer.echo(f"wrote {output}")


if __name__ == "__main__":  # pragma: no cover
    app()
