"""What every `exchange` command shares: the `--database-url` option, the settings a command runs with, and running
work against a built, migrated exchange.

A leaf of the command line: it imports no command module, so the root command (`exchange/main.py`) and each
package's commands (`auth/cli.py`, `audit/cli.py`, `notify/cli.py`, ...) import it and never each other.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Optional, TypeVar

import typer

from exchange.errors import FhirError
from exchange.settings import Settings, get_settings, usable_database_url

try:  # recent typer carries its own copy of click: its context is the one a command runs in
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover
    from click import get_current_context

T = TypeVar("T")

DatabaseOption = typer.Option(None, "--database-url", help="SQLAlchemy async URL (env EXCHANGE_DATABASE_URL)")


def settings_with(database_url: Optional[str] = None, **overrides) -> Settings:
    """The environment's settings with the command's options on top (an unusable --database-url is refused)."""
    base = get_settings()
    if database_url is not None:
        try:
            usable_database_url(database_url)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--database-url") from None
    values = {k: v for k, v in {"database_url": database_url, **overrides}.items() if v is not None}
    return base.model_copy(update=values) if values else base


def build_exchange(settings: Settings):  # noqa: ANN201
    """The exchange with every package wired in (the same `build` the server uses): the root command
    (`exchange/main.py`) puts its builder in the click context of every sub-command, so this leaf need not import
    the composition root above it."""
    return get_current_context().obj(settings)


async def run_with_exchange(settings: Settings, work: Callable[..., Awaitable[T]], migrate: bool = True) -> T:
    """Build the exchange, bring the schema up to date (unless `migrate` is false), run `work(exchange)`, and close
    the database."""
    from exchange.store.migrate import upgrade

    exchange = build_exchange(settings)
    try:
        if migrate:
            await upgrade(exchange.db)
        return await work(exchange)
    finally:
        await exchange.db.dispose()


def run_or_report(database_url: Optional[str], work: Callable[..., Awaitable[T]], *expected: type[Exception]) -> T:
    """Run `work(exchange)` on the command's database; a failure of an `expected` kind (a refusal the person can
    act on) is one `error:` line, a FhirError's diagnostics or the exception's text, and exit status 2."""
    try:
        return asyncio.run(run_with_exchange(settings_with(database_url), work))
    except expected as exc:
        typer.echo(f"error: {exc.diagnostics if isinstance(exc, FhirError) else exc}", err=True)
        raise typer.Exit(2) from None
