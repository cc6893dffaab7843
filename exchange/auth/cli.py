"""`exchange clients ...`: register, list, disable, enable and re-key the partner systems that may get tokens."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import orjson
import typer

from exchange.auth.clients import ClientError, audited_change
from exchange.auth.roles import ROLES
from exchange.cli_support import DatabaseOption, run_or_report
from exchange.console import JsonOption, print_table
from exchange.context import system_context
from exchange.errors import FhirError

clients_app = typer.Typer(help="OAuth clients (SMART Backend Services) of partner systems.", no_args_is_help=True)


def run_command(database_url: Optional[str], work):  # noqa: ANN001, ANN202
    """Run `work(exchange)`; a refused client change or FHIR error is one `error:` line and exit status 2."""
    return run_or_report(database_url, work, ClientError, FhirError)


async def _change(exchange, interaction: str, work):  # noqa: ANN001, ANN202
    """A registry change made by the exchange itself, recorded in the audit log like an admin's."""
    return await audited_change(exchange, system_context(), interaction, work)


def _print(value: object) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _read_jwks(path: Optional[Path]) -> dict | None:
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        typer.echo(f"error: cannot read the JWK Set in {path}: {exc}", err=True)
        raise typer.Exit(2) from None


def _registry(exchange):  # noqa: ANN001, ANN202
    from exchange.auth.service import auth_service

    return auth_service(exchange).registry


@clients_app.command("add")
def add(organization: str = typer.Option(..., help="The client's Organization id in the directory"),
        role: str = typer.Option("partner", help=" | ".join(ROLES)),
        scope: str = typer.Option(..., help='Registered SMART scopes, e.g. "system/Task.cruds system/*.rs"'),
        jwks: Optional[Path] = typer.Option(None, help="A file holding the client's public JWK Set"),
        jwks_url: Optional[str] = typer.Option(None, help="The https URL of the client's JWK Set"),
        client_id: Optional[str] = typer.Option(None, help="Choose the client id (default: generated)"),
        label: Optional[str] = typer.Option(None, help="A note for operators (the partner system's name)"),
        database_url: Optional[str] = DatabaseOption) -> None:
    """Register a client and print it as JSON (client_id, organization, role, scope)."""
    keys = _read_jwks(jwks)

    async def work(exchange):  # noqa: ANN001, ANN202
        return await _change(exchange, "client-register", lambda conn: _registry(exchange).add(
            organization.removeprefix("Organization/"), role, scope, jwks=keys, jwks_url=jwks_url,
            client_id=client_id, label=label, conn=conn))

    _print(run_command(database_url, work).as_json())


@clients_app.command("list")
def list_clients(database_url: Optional[str] = DatabaseOption, as_json: bool = JsonOption) -> None:
    """List the registered clients (a table; --json for scripts)."""
    async def work(exchange):  # noqa: ANN001, ANN202
        return await _registry(exchange).list()

    clients = [c.as_json() for c in run_command(database_url, work)]
    if as_json:
        _print(clients)
        return
    print_table([{**c, "keys": c.get("jwks_url") or f"{len(c.get('kids') or [])} key(s)"} for c in clients],
                [("client_id", "Client"), ("organization", "Organization"), ("role", "Role"),
                 ("active", "Active"), ("scope", "Scope"), ("keys", "Keys"), ("label", "Label")],
                empty="no clients registered (`exchange clients add`, or `make run` for the demo clients)")


@clients_app.command("disable")
def disable(client_id: str = typer.Argument(..., help="The client to disable"),
            database_url: Optional[str] = DatabaseOption) -> None:
    """Disable a client: it gets no new tokens and its current tokens stop working at once."""
    _set_active(client_id, False, database_url)


@clients_app.command("enable")
def enable(client_id: str = typer.Argument(..., help="The client to enable again"),
           database_url: Optional[str] = DatabaseOption) -> None:
    """Enable a disabled client."""
    _set_active(client_id, True, database_url)


def _set_active(client_id: str, active: bool, database_url: Optional[str]) -> None:
    """Change a client's state in the same transaction as its audit record, and print the client."""
    async def work(exchange):  # noqa: ANN001, ANN202
        return await _change(exchange, "client-update",
                             lambda conn: _registry(exchange).set_active(client_id, active, conn=conn))

    _print(run_command(database_url, work).as_json())


@clients_app.command("rotate-keys")
def rotate_keys(client_id: str = typer.Argument(..., help="The client whose keys change"),
                jwks: Optional[Path] = typer.Option(None, help="A file holding the new public JWK Set"),
                jwks_url: Optional[str] = typer.Option(None, help="The new https URL of the client's JWK Set"),
                database_url: Optional[str] = DatabaseOption) -> None:
    """Replace a client's registered keys (assertions signed with the old keys are refused from now on)."""
    keys = _read_jwks(jwks)

    async def work(exchange):  # noqa: ANN001, ANN202
        return await _change(exchange, "client-update", lambda conn: _registry(exchange).set_keys(
            client_id, jwks=keys, jwks_url=jwks_url, conn=conn))

    _print(run_command(database_url, work).as_json())


@clients_app.command("confirm")
def confirm(client_id: str = typer.Argument(..., help="The client registered or re-keyed over HTTP"),
            database_url: Optional[str] = DatabaseOption) -> None:
    """Confirm a client an admin registered or re-keyed over HTTP: until then it gets no token."""
    async def work(exchange):  # noqa: ANN001, ANN202
        return await _change(exchange, "client-confirm",
                             lambda conn: _registry(exchange).confirm(client_id, by=None, conn=conn))

    _print(run_command(database_url, work).as_json())


@clients_app.command("set-scope")
def set_scope(client_id: str = typer.Argument(..., help="The client whose registered scopes change"),
              scope: str = typer.Option(..., help="The new registered scopes"),
              database_url: Optional[str] = DatabaseOption) -> None:
    """Replace a client's registered scopes (narrowing them narrows its live tokens at once)."""
    async def work(exchange):  # noqa: ANN001, ANN202
        return await _change(exchange, "client-update",
                             lambda conn: _registry(exchange).set_scopes(client_id, scope, conn=conn))

    _print(run_command(database_url, work).as_json())
