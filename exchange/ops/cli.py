"""`exchange backup` and `exchange restore` (exchange.ops.backup)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from exchange.cli_support import DatabaseOption, settings_with


def _url(database_url: Optional[str]) -> str:
    return settings_with(database_url).database_url


def backup(output: Path = typer.Option(..., "--output", "-o", help="The backup file to write (must not exist)"),
           database_url: Optional[str] = DatabaseOption) -> None:
    """A consistent copy of the whole database while the exchange runs (pg_dump on PostgreSQL)."""
    from exchange.ops.backup import BackupError, backup as run_backup

    try:
        run_backup(_url(database_url), output)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {output}")


def restore(source: Path = typer.Argument(..., help="A file written by `exchange backup`"),
            database_url: Optional[str] = DatabaseOption) -> None:
    """Put a backup into an empty database (a new SQLite file or a freshly created PostgreSQL database)."""
    from exchange.ops.backup import BackupError, restore as run_restore

    try:
        run_restore(_url(database_url), source)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"restored {source}: start the exchange on it with the same key-encryption key, then run "
               f"`exchange audit verify` with the last checkpoint you kept")
