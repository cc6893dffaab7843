"""The `exchange` command line: serve, db, orgs, demo (other packages add their own sub-commands)."""
from __future__ import annotations

import asyncio
from typing import Optional

import typer

from exchange.audit.cli import app as audit_app
from exchange.console import ExchangeGroup
from exchange.demo import ORG_KINDS
from exchange.settings import Settings, export_settings, get_settings, usable_database_url

app = typer.Typer(cls=ExchangeGroup, no_args_is_help=True,
                  help="GBV referral exchange: a FHIR R4 gateway for referrals between organisations.")
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
orgs_app = typer.Typer(help="The directory of organisations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(orgs_app, name="orgs")
from exchange.auth.cli import clients_app  # noqa: E402  (the auth package's own sub-commands)

app.add_typer(clients_app, name="clients")
app.add_typer(audit_app, name="audit")
from exchange.web.cli import staff_app  # noqa: E402  (the web inbox's own sub-commands)

app.add_typer(staff_app, name="staff")

from exchange.keys_cli import keys_app  # noqa: E402

app.add_typer(keys_app, name="keys")
from exchange.ops.cli import backup as _backup, restore as _restore  # noqa: E402

app.command("backup")(_backup)
app.command("restore")(_restore)

from exchange.notify.cli import worker as _worker  # noqa: E402
from exchange.notify.cli import dev_app  # noqa: E402
from exchange.demo_cli import demo_app  # noqa: E402

app.command("worker")(_worker)
app.add_typer(demo_app, name="demo")
app.add_typer(dev_app, name="dev")

DatabaseOption = typer.Option(None, "--database-url", help="SQLAlchemy async URL (env EXCHANGE_DATABASE_URL)")


def settings_with(database_url: Optional[str] = None, **overrides) -> Settings:
    base = get_settings()
    if database_url is not None:
        try:
            usable_database_url(database_url)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--database-url") from None
    values = {k: v for k, v in {"database_url": database_url, **overrides}.items() if v is not None}
    return base.model_copy(update=values) if values else base


def build_exchange(settings: Settings):  # noqa: ANN201
    """The exchange with every package wired in (the same wiring the server uses)."""
    from exchange.wiring import build

    return build(settings)


async def run_with_exchange(settings: Settings, work):  # noqa: ANN001, ANN202
    """Build the exchange, bring the schema up to date, run `work(exchange)`, and close the database."""
    from exchange.store.migrate import upgrade

    exchange = build_exchange(settings)
    try:
        await upgrade(exchange.db)
        return await work(exchange)
    finally:
        await exchange.db.dispose()


_with_exchange = run_with_exchange


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
        from exchange.auth.demo import instructions, register_demo_clients
        from exchange.console import progress
        from exchange.web.demo import register_demo_staff, staff_instructions

        with progress("loading the demo directory, story, clients and staff"):
            clients = await register_demo_clients(exchange)
            staff = await register_demo_staff(exchange, clients)
        return instructions(exchange, clients) + "\n" + staff_instructions(exchange, staff)

    said = asyncio.run(_with_exchange(settings, _prepare))
    if said:
        typer.echo(said)
    typer.echo(f"FHIR base: {settings.fhir_base_url}   (GET {settings.fhir_base_url}/metadata)")
    if workers > 1:  # each worker process builds its app from the same settings, passed on as EXCHANGE_* values
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

    async def _upgrade() -> list[str]:
        exchange = build_exchange(settings_with(database_url))
        try:
            return await upgrade(exchange.db)
        finally:
            await exchange.db.dispose()

    applied = asyncio.run(_upgrade())
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
    from exchange.demo import organization_resource
    from exchange.directory import add_organization

    body = organization_resource(name, kind, identifier)
    org_id = asyncio.run(_with_exchange(settings_with(database_url),
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
