"""`exchange staff ...`: the administrator creates, lists, disables and enables the people who use the web inbox."""
from __future__ import annotations

import sys
from typing import Optional

import orjson
import typer

from exchange.cli_support import DatabaseOption, run_or_report
from exchange.web import accounts

staff_app = typer.Typer(help="Staff accounts of the web inbox (people, not partner systems).", no_args_is_help=True)


def _run(database_url: Optional[str], work):  # noqa: ANN001, ANN202
    return run_or_report(database_url, work, accounts.StaffError)


@staff_app.command("add")
def add(username: str = typer.Option(..., help="Sign-in name: lower-case letters, digits, '.', '_', '-'"),
        organization: str = typer.Option(..., help="The person's Organization id in the directory"),
        role: str = typer.Option("caseworker", help=" | ".join(accounts.ROLES)),
        locale: Optional[str] = typer.Option(None, help="Language of their pages: en | ar (default: the browser's)"),
        password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input"),
        database_url: Optional[str] = DatabaseOption) -> None:
    """Create an account and enrol its TOTP second factor: give the printed secret (or URI, as a QR code) to the
    person, once, in person."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    staff, secret = _run(database_url, lambda exchange: accounts.add_staff(
        exchange, username, organization, role, password, locale))
    typer.echo(f"created {staff.username} ({staff.role}) for Organization/{staff.organization_id}")
    typer.echo(f"TOTP secret: {secret}")
    typer.echo(f"TOTP provisioning URI: {accounts.provisioning_uri(staff.username, secret)}")


@staff_app.command("disable")
def disable(username: str = typer.Argument(...), database_url: Optional[str] = DatabaseOption) -> None:
    """Disable an account: it cannot sign in and its open sessions end at once."""
    staff = _run(database_url, lambda exchange: accounts.set_active(exchange, username, False))
    typer.echo(f"disabled {staff.username}")


@staff_app.command("enable")
def enable(username: str = typer.Argument(...), database_url: Optional[str] = DatabaseOption) -> None:
    """Enable a disabled account again (its lock-out is cleared too)."""
    staff = _run(database_url, lambda exchange: accounts.set_active(exchange, username, True))
    typer.echo(f"enabled {staff.username}")


@staff_app.command("list")
def list_(organization: Optional[str] = typer.Option(None, help="Only this Organization's staff"),
          database_url: Optional[str] = DatabaseOption) -> None:
    """The accounts as JSON (never a hash or a secret)."""
    found = _run(database_url, lambda exchange: accounts.list_staff(exchange, organization))
    typer.echo(orjson.dumps([s.as_json() for s in found], option=orjson.OPT_INDENT_2).decode())
