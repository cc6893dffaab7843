"""`exchange keys ...`: the exchange's own signing keys (list, rotate) and a new key-encryption key."""
from __future__ import annotations

from typing import Optional

import typer

from exchange.cli_support import DatabaseOption, run_or_report
from exchange.custody import KeyCustodyError, generate_kek

keys_app = typer.Typer(help="The exchange's signing keys, sealed under the key-encryption key.", no_args_is_help=True)


def _run(database_url: Optional[str], work):  # noqa: ANN001, ANN202
    return run_or_report(database_url, work, KeyCustodyError)


@keys_app.command("list")
def list_keys(database_url: Optional[str] = DatabaseOption) -> None:
    """One line per key: kid, created, what it still does, the KEK it is sealed under (never key material)."""
    async def work(exchange):  # noqa: ANN001, ANN202
        await exchange.keys.load()  # seals keys left in the clear by an older version, creates the first key
        return await exchange.keys.describe()

    for info in _run(database_url, work):
        if info.signing:
            role = "signing"
        elif info.retired is not None:
            role = f"retired {info.retired:%Y-%m-%dT%H:%M:%SZ}, verifies tokens until " \
                   f"{info.verifies_tokens_until:%Y-%m-%dT%H:%M:%SZ}, checkpoints and signatures forever"
        else:
            role = "published"
        sealed = f"sealed under KEK {info.sealed_under}" if info.sealed_under else "NOT SEALED"
        typer.echo(f"{info.kid}  created {info.created:%Y-%m-%dT%H:%M:%SZ}  {role}  {sealed}")


@keys_app.command("rotate")
def rotate(database_url: Optional[str] = DatabaseOption) -> None:
    """Make a new signing key; the old ones keep verifying (running servers switch within key_refresh_seconds)."""
    async def work(exchange):  # noqa: ANN001, ANN202
        return (await exchange.keys.rotate()).kid

    typer.echo(_run(database_url, work))


@keys_app.command("generate-kek")
def generate() -> None:
    """Print a new key-encryption key (for EXCHANGE_KEY_ENCRYPTION_KEY or its file); it is not stored anywhere."""
    typer.echo(generate_kek())
