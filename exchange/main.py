"""The composition root, the one place the exchange is put together: `build` installs every package into one
`Exchange` (the server, the worker and every command build it here, so they all apply the same rules), `create_app`
serves it over HTTP, and `cli` is the `exchange` root command (serve, db, orgs, openapi, conformance) with each
package's own sub-commands mounted under it.

Only entry points import it (the `exchange` script, `python -m exchange.main`, uvicorn's worker factory, tests). The
helpers every command shares are in `exchange/cli_support.py`; it receives `build` through the root command's click
context, so it imports nothing above itself.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, AsyncIterator, Optional

import typer

from exchange.audit.cli import app as audit_app
from exchange.auth.cli import clients_app
from exchange.cli_support import DatabaseOption, run_with_exchange, settings_with
from exchange.console import ExchangeGroup
from exchange.demo.cli import clients_demo, demo_app
from exchange.keys_cli import keys_app
from exchange.notify.cli import dev_app, worker
from exchange.ops.cli import backup, restore
from exchange.organizations import ORG_KINDS
from exchange.kernel.exchange import Exchange
from exchange.settings import Settings, export_settings, get_settings
from exchange.stats.cli import stats
from exchange.web.cli import staff_app

if TYPE_CHECKING:
    from fastapi import FastAPI


def build(settings: Settings) -> Exchange:
    """One Exchange with every package's hooks, rules, routers and background jobs installed."""
    from exchange import audit, auth, coordination, jobs, notify, ops, referral, stats, web

    exchange = Exchange.from_settings(settings)
    exchange.on_start.append(_load_keys)
    auth.install(exchange)
    notify.install(exchange)
    referral.install(exchange)
    web.install(exchange)
    ops.install(exchange)
    stats.install(exchange)
    coordination.install(exchange)
    audit.install(exchange)  # the audit hook last among the hooks: its records are built from the whole unit
    jobs.install(exchange)  # after every package registered its background jobs
    return exchange


async def _load_keys(exchange: Exchange) -> None:
    """Load the signing keys before the first request: units of work use them (page tokens) and on SQLite must not
    open a second write transaction to create them."""
    await exchange.keys.current()


def _may_serve_fhir(route) -> bool:  # noqa: ANN001
    """Whether the route may match a /fhir path: it does, or it is not a plain route (a router included in a
    router, a mount), so its paths are not known here."""
    path = getattr(route, "path", None)
    return not isinstance(path, str) or path.startswith("/fhir")


def create_app(settings: Settings | None = None, exchange: Exchange | None = None) -> FastAPI:
    """The FastAPI app serving `exchange` (built from the settings when not given): its routers, the HTTP edge
    (exchange/edge.py), and the lifespan (migrations on start, then whatever background work the exchange runs)."""
    from exchange.edge import ExchangeApp, install_error_handlers, install_openapi
    from exchange.fhir.routes import router as fhir_router
    from exchange.store.migrate import upgrade

    settings = settings or get_settings()
    if exchange is None:
        exchange = build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = 0
        try:
            if settings.migrate_on_start:
                await upgrade(exchange.db)
            await exchange.keys.load()  # without the key-encryption key the exchange does not start
            for start in exchange.on_start:
                await start(exchange)
                started += 1
        except BaseException:  # a start that fails leaves nothing running: no job, no open connection
            try:
                if started:
                    for stop in exchange.on_stop:
                        await stop(exchange)
            finally:
                await exchange.db.dispose()
            raise
        try:
            yield
        finally:
            for stop in exchange.on_stop:
                await stop(exchange)
            await exchange.db.dispose()

    # the HTTP edge (exchange.edge.Edge, outermost) and the route index are its middleware stack; FastAPI's native
    # OpenTelemetry is off (exchange.edge.NO_TELEMETRY)
    app = ExchangeApp(title="GBV referral exchange", version="0.1.0", lifespan=lifespan,
                      description="FHIR R4 referral exchange for organisations serving survivors of gender-based "
                                  "violence. Resources are application/fhir+json; errors are OperationOutcomes.")
    app.state.exchange = exchange
    install_error_handlers(app)
    # Routes are tried in order, each a regular expression: specific /fhir routes first (they must win over
    # /fhir/{type}/{id}), then the generic ones, and only then those no /fhir path can match (the web inbox,
    # operations, client administration), so a FHIR request does not try them all first.
    serves_fhir = [r for r in exchange.routers if any(_may_serve_fhir(x) for x in r.routes)]
    for router in serves_fhir:
        app.include_router(router)
    app.include_router(fhir_router)
    for router in exchange.routers:
        if router not in serves_fhir:
            app.include_router(router)
    if "web" in exchange.extensions:  # the web inbox (exchange.web): its pages, static files and headers
        from exchange.web import mount

        mount(app)
    install_openapi(app)
    return app


def worker_app() -> FastAPI:
    """The app of one `exchange serve --workers` process: the settings the parent exported to the environment."""
    from exchange.ops.logs import configure_logging

    settings = get_settings()
    configure_logging(settings)
    application = create_app(settings)
    settle_heap()
    return application


def settle_heap() -> None:
    """Take what the server process built before serving (modules, the FHIR models' classes and schemas, the app)
    out of the garbage collector's scans (`gc.freeze`), once, after a collection of what building it left.

    Those objects live as long as the process, and every full collection walked all of them: in bench/calls.py one
    took about 1 s of CPU on a loaded machine (0.13 s with them frozen), and it stops the event loop while it runs.
    Objects made while serving are collected as before. Only the server's entry points call it: a process that
    builds many apps (the tests) would keep every frozen cycle for good."""
    import gc

    gc.collect()
    gc.freeze()


def openapi_yaml() -> str:
    """openapi.yaml, generated from the app so the document and the routes cannot drift apart."""
    import yaml

    application = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    return yaml.safe_dump(application.openapi(), sort_keys=True, allow_unicode=True)


# every sub-command finds `build` in its click context (cli_support.build_exchange builds with it)
cli = typer.Typer(cls=ExchangeGroup, no_args_is_help=True, context_settings={"obj": build},
                  help="GBV referral exchange: a FHIR R4 gateway for referrals between organisations.")
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
orgs_app = typer.Typer(help="The directory of organisations.", no_args_is_help=True)
cli.add_typer(db_app, name="db")
cli.add_typer(orgs_app, name="orgs")
# each package's own sub-commands (they share exchange/cli_support.py and never import this module)
cli.add_typer(clients_app, name="clients")
clients_app.command("demo")(clients_demo)  # the demo wing's, mounted here so auth/ does not import the demo
cli.add_typer(audit_app, name="audit")
cli.add_typer(staff_app, name="staff")
cli.add_typer(keys_app, name="keys")
cli.command("backup")(backup)
cli.command("restore")(restore)
cli.command("stats")(stats)
cli.command("worker")(worker)
cli.add_typer(demo_app, name="demo")
cli.add_typer(dev_app, name="dev")


@cli.command()
def serve(host: Optional[str] = typer.Option(None, help="Interface to listen on (default 127.0.0.1)"),
          port: Optional[int] = typer.Option(None, help="Port (default 8080)"),
          database_url: Optional[str] = DatabaseOption,
          demo: bool = typer.Option(False, "--demo", help="Load the demo organisations before serving"),
          workers: int = typer.Option(1, "--workers", min=1, help="Server processes (PostgreSQL only); background "
                                                                   "jobs run in one of them")) -> None:
    """Run the exchange's HTTP server."""
    import uvicorn

    from exchange.edge import uvicorn_config

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
        _serve_workers(settings, workers)
        return
    application = create_app(settings, build(settings))
    settle_heap()
    uvicorn.Server(uvicorn_config(application, settings)).run()


def _serve_workers(settings: Settings, workers: int) -> None:
    """uvicorn's supervisor (it restarts a worker that dies) over a socket of each worker's own on the one port
    (exchange.ops.listeners: the kernel spreads connections over them)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from exchange.ops.listeners import PortClaim

    config = uvicorn.Config("exchange.main:worker_app", factory=True, workers=workers, host=settings.host,
                            port=settings.port, access_log=False, log_level="info", log_config=None,
                            timeout_worker_healthcheck=60)  # a worker still importing on a busy machine is not dead
    claim = PortClaim(settings.host, settings.port)
    try:
        sockets = claim.open()
    except OSError as exc:
        raise typer.BadParameter(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
                                 param_hint="--port") from None
    typer.echo(f"{workers} server processes on http://{settings.host}:{settings.port}")
    try:
        Multiprocess(config, sockets=sockets).run()
    except KeyboardInterrupt:
        pass
    finally:
        claim.close()


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


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def conformance(ctx: typer.Context) -> None:
    """The partner conformance kit against a deployment (the same as `python -m conformance`; --help lists options)."""
    from conformance.cli import main

    raise typer.Exit(main(list(ctx.args)))


@cli.command()
def openapi(output: str = typer.Option("openapi.yaml", help="Where to write the OpenAPI document")) -> None:
    """Write the OpenAPI description of the HTTP API (openapi.yaml at the repository root)."""
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(openapi_yaml())
    typer.echo(f"wrote {output}")


if __name__ == "__main__":  # pragma: no cover
    cli()
