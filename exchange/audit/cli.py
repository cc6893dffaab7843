"""`exchange audit ...`: verify the chain, link the queue, sign a checkpoint, export a period, verify an export, purge
content."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Optional

import orjson
import typer

from exchange.cli_support import DatabaseOption, run_with_exchange, settings_with

app = typer.Typer(help="The exchange log: verify, link, checkpoint, export, verify-export, purge, emergencies.",
                  no_args_is_help=True)


def _run(database_url: Optional[str], work):  # noqa: ANN001, ANN202
    return asyncio.run(run_with_exchange(settings_with(database_url), work))


def _instant(name: str, raw: Optional[str]):  # noqa: ANN202
    if raw is None:
        return None
    from exchange.fhir.dates import parse_fhir_date

    try:
        return parse_fhir_date(raw)[0]
    except ValueError:
        raise typer.BadParameter(f"'{raw}' is not a FHIR date or instant", param_hint=name) from None


@app.command()
def verify(kept: list[str] = typer.Option([], "--checkpoint", help="A checkpoint kept from earlier (JWS, a file "
                                                                   "holding one, or its JSON); repeatable"),
           jwks_file: Optional[Path] = typer.Option(None, "--jwks", help="The published JWKS (a file); default: "
                                                                         "the exchange's own keys"),
           database_url: Optional[str] = DatabaseOption) -> None:
    """Recompute the hash chain and check every signed checkpoint (stored and kept) against it; exit 1 naming the
    first record that does not match. Records still queued for linking are reported."""
    from exchange.audit.verify import verify_database

    tokens = [_read_checkpoint(k) for k in kept]
    keys = orjson.loads(jwks_file.read_bytes()) if jwks_file is not None else None

    from exchange.console import progress

    async def work(exchange):  # noqa: ANN001, ANN202
        return await verify_database(exchange, tokens, keys, progress=advance)

    with progress("verifying the log") as advance:
        verdict = _run(database_url, work)
    typer.echo(str(verdict))
    raise typer.Exit(0 if verdict.ok else 1)


@app.command()
def link(database_url: Optional[str] = DatabaseOption) -> None:
    """Link every record committed so far into the chain now (one linker pass; servers do this on their own within
    moments of each commit) and say how many were linked."""
    from exchange.audit.linker import link_pass

    async def work(exchange) -> int:  # noqa: ANN001
        async with exchange.db.transaction() as conn:
            return await link_pass(conn)

    count = _run(database_url, work)
    typer.echo(f"linked {count} record{'' if count == 1 else 's'}")


@app.command()
def checkpoint(database_url: Optional[str] = DatabaseOption) -> None:
    """Sign a checkpoint of the log's current head and print it as JSON (tree_size, head, time, checkpoint)."""
    from exchange.audit.checkpoint import sign_checkpoint

    signed = _run(database_url, sign_checkpoint)
    typer.echo(orjson.dumps(signed.as_json()).decode())


@app.command()
def jwks(database_url: Optional[str] = DatabaseOption) -> None:
    """Print the exchange's public keys (JWKS), which verify checkpoints."""
    async def work(exchange) -> dict:  # noqa: ANN001
        return await exchange.keys.public_jwks()

    typer.echo(orjson.dumps(_run(database_url, work)).decode())


@app.command()
def export(since: Optional[str] = typer.Option(None, help="FHIR instant or date: first record at or after"),
           until: Optional[str] = typer.Option(None, help="FHIR instant or date: records before"),
           first_seq: Optional[int] = typer.Option(None, "--from-seq", help="Export from this sequence number"),
           last_seq: Optional[int] = typer.Option(None, "--to-seq", help="Export up to this sequence number"),
           output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default stdout)"),
           database_url: Optional[str] = DatabaseOption) -> None:
    """Write a contiguous stretch of the log as NDJSON (AuditEvents with their sequence and hash)."""
    from exchange.audit.export import export_lines

    from exchange.console import progress

    start, end = _instant("--since", since), _instant("--until", until)
    if output is not None and not output.parent.is_dir():
        raise typer.BadParameter(f"the folder {output.parent} does not exist; create it or choose another file",
                                 param_hint="--output")

    async def work(exchange) -> int:  # noqa: ANN001
        out = output.open("wb") if output else sys.stdout.buffer
        count = 0
        try:
            async for line in export_lines(exchange.db, start, end, first_seq, last_seq):
                out.write(line)
                count += 1
                advance()
        finally:
            if output:
                out.close()
            else:
                out.flush()
        return count

    with progress("exporting the log") as advance:
        count = _run(database_url, work)
    if output:
        typer.echo(f"wrote {count} records to {output}", err=True)


def _read_checkpoint(value: str) -> str:
    """A checkpoint given as the JWS itself, a file holding it, or the JSON that `checkpoint` prints."""
    try:
        text = Path(value).read_text() if Path(value).is_file() else value
    except OSError:  # a JWS is longer than a file name may be
        text = value
    text = text.strip()
    if text.startswith("{"):
        text = orjson.loads(text)["checkpoint"]
    return text


@app.command("verify-export")
def verify_export(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="NDJSON from `export`"),
                  checkpoints: list[str] = typer.Option(..., "--checkpoint", help="Two checkpoints (JWS, a file "
                                                                                  "holding one, or its JSON)"),
                  jwks_file: Optional[Path] = typer.Option(None, "--jwks", help="The published JWKS (a file); "
                                                                                "default: read from the database"),
                  database_url: Optional[str] = DatabaseOption) -> None:
    """Check that the export holds every record between two signed checkpoints, unaltered and in order."""
    from exchange.audit.verify import verify_segment

    if len(checkpoints) != 2:
        raise typer.BadParameter("give exactly two --checkpoint values", param_hint="--checkpoint")
    if jwks_file is not None:
        keys = orjson.loads(jwks_file.read_bytes())
    else:
        async def work(exchange) -> dict:  # noqa: ANN001
            return await exchange.keys.public_jwks()

        keys = _run(database_url, work)
    with file.open("rb") as lines:
        verdict = verify_segment(lines, _read_checkpoint(checkpoints[0]), _read_checkpoint(checkpoints[1]), keys)
    typer.echo(str(verdict))
    raise typer.Exit(0 if verdict.ok else 1)


@app.command()
def purge(dry_run: bool = typer.Option(False, "--dry-run", help="List what would be purged; change nothing"),
          days: Optional[int] = typer.Option(None, help="Override EXCHANGE_RETENTION_DAYS"),
          database_url: Optional[str] = DatabaseOption,
          as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (for scripts)")) -> None:
    """Purge the survivor data of referrals closed longer ago than the retention period (the log stays)."""
    from exchange.audit.retention import purge_closed
    from exchange.console import progress

    async def work(exchange):  # noqa: ANN001, ANN202
        return await purge_closed(exchange, days=days, dry_run=dry_run, progress=advance)

    with progress("purging closed referrals") as advance:
        report = _run(database_url, work)
    if as_json:
        typer.echo(orjson.dumps(report.as_json()).decode())
        return
    found = report.as_json()
    if found["cutoff"] is None:
        typer.echo("no retention period (set EXCHANGE_RETENTION_DAYS or pass --days): nothing purged")
        return
    verb = "would purge" if dry_run else "purged"
    typer.echo(f"{verb} {len(found['purged'])} resource(s) of {len(found['closed_referrals'])} referral(s) closed "
               f"before {found['cutoff']}; kept {len(found['kept_for_open_referrals'])} that open referrals share")
    for reference in found["purged"]:
        typer.echo(f"  {reference}")


@app.command()
def emergencies(since: Optional[str] = typer.Option(None, help="FHIR instant or date: uses at or after"),
                until: Optional[str] = typer.Option(None, help="FHIR instant or date: uses before"),
                database_url: Optional[str] = DatabaseOption,
                as_json: bool = typer.Option(False, "--json", help="Print the uses as JSON (for scripts)")) -> None:
    """List the referrals made without her consent under the emergency exception (who, when, which referral, the
    coded reason), from the exchange log."""
    from exchange.audit.emergencies import uses
    from exchange.console import print_json, print_table

    start, end = _instant("--since", since), _instant("--until", until)

    async def work(exchange):  # noqa: ANN001, ANN202
        async with exchange.db.engine.connect() as conn:
            return await uses(conn, start, end)

    found = [u.as_json() for u in _run(database_url, work)]
    if as_json:
        print_json(found)
        return
    print_table(found, [("recorded", "Recorded"), ("organization", "Referred by"), ("referral", "Referral"),
                        ("reason", "Reason"), ("auditEvent", "AuditEvent")],
                empty="no referral was made under the emergency exception")
