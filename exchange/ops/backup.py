"""`exchange backup` and `exchange restore`: a consistent copy of the whole database, and putting it back.

PostgreSQL: `pg_dump --format=custom` (one snapshot, taken while the exchange serves) and `pg_restore` into an empty
database. SQLite: the online backup API (a consistent copy while the exchange writes) and a copy of that file.
The copy holds survivor data and the sealed signing keys, never the key-encryption key: store it as you store the
database, and the KEK apart from it.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url


class BackupError(RuntimeError):
    """The copy or the restore failed; the message says which tool and why (never a password)."""


def _libpq(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection options for pg_dump/pg_restore, the password in the environment (not on the command line)."""
    parts = make_url(url)
    args = ["--host", parts.host or "127.0.0.1", "--port", str(parts.port or 5432)]
    if parts.username:
        args += ["--username", parts.username]
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = str(parts.password)
    return args, env


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up")
    return Path(database)


def _run(command: list[str], env: dict[str, str]) -> None:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError:
        raise BackupError(f"{command[0]} is not installed (it comes with the PostgreSQL client)") from None
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()[-500:]}")


def backup(url: str, output: Path) -> None:
    """Write a consistent copy of the database at `url` to `output` (refuses to overwrite)."""
    if output.exists():
        raise BackupError(f"{output} exists: choose a new file")
    if make_url(url).get_backend_name() == "sqlite":
        source = sqlite3.connect(_sqlite_path(url))
        target = sqlite3.connect(output)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        return
    args, env = _libpq(url)
    _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", *args, "--file", str(output),
          "--dbname", make_url(url).database or "postgres"], env)


def restore(url: str, source: Path) -> None:
    """Put a backup into the EMPTY database at `url` (a new SQLite file, or a freshly created PostgreSQL database)."""
    if not source.is_file():
        raise BackupError(f"{source} is not a backup file")
    if make_url(url).get_backend_name() == "sqlite":
        target = _sqlite_path(url)
        if target.exists():
            raise BackupError(f"{target} exists: restore into a new file")
        shutil.copyfile(source, target)
        return
    args, env = _libpq(url)
    _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", *args,
          "--dbname", make_url(url).database or "postgres", str(source)], env)
