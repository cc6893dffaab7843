"""`exchange backup` and `exchange restore` (exchange.ops.backup)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer

from exchange.cli_support import DatabaseOption, settings_with


def _run(step: Callable[[str, Path], None], database_url: Optional[str], path: Path, done: str) -> None:
    """Run a backup step on the command's database; a BackupError is one `error:` line and exit status 2."""
    from exchange.ops.backup import BackupError

    try:
        step(settings_with(database_url).database_url, path)
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(done)


def backup(output: Path = typer.Option(..., "--output", "-o", help="The backup file to write (must not exist)"),
           database_url: Optional[str] = DatabaseOption) -> None:
    """A consistent copy of the whole database while the exchange runs (pg_dump on PostgreSQL)."""
    from exchange.ops.backup import backup as run_backup

    _run(run_backup, database_url, output, f"wrote {output}")


def restore(source: Path = typer.Argument(..., help="A file written by `exchange backup`"),
            database_url: Optional[str] = DatabaseOption) -> None:
    """Put a backup into an empty database (a new SQLite file or a freshly created PostgreSQL database)."""
    from exchange.ops.backup import restore as run_restore

    _run(run_restore, database_url, source, f"restored {source}: start the exchange on it with the same "
         "key-encryption key, then run `exchange audit verify` with the last checkpoint you kept")
