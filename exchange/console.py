"""How the `exchange` command line talks: tables for people (`--json` for scripts), one-line errors, progress bars.

Every command's failure ends here as one `error:` line that says what to do; a traceback only with
EXCHANGE_CLI_TRACEBACK=true (for developers).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

try:  # recent typer carries its own copy of click: its exceptions are the ones raised
    from typer._click import exceptions as clickx
except ImportError:  # pragma: no cover
    from click import exceptions as clickx

_NO_ARGS = getattr(clickx, "NoArgsIsHelpError", ())

JsonOption = typer.Option(False, "--json", help="Print JSON (for scripts) instead of a table")


def out() -> Console:
    """stdout; a table piped to a file or another program is not folded to 80 columns."""
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 400)


def err() -> Console:
    return Console(stderr=True, soft_wrap=True)


def print_json(value: object) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def print_table(rows: Sequence[dict], columns: Sequence[tuple[str, str]], title: str | None = None,
                empty: str = "nothing to show") -> None:
    """Rows (dicts) as a table with the given (key, heading) columns; `empty` when there are none."""
    if not rows:
        typer.echo(empty)
        return
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, header_style="bold")
    for _, heading in columns:
        table.add_column(heading, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key, _ in columns))
    out().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` and return the Exit to raise (`raise fail(...)`)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Any]:
    """A progress bar on stderr (shown only on a terminal); yields `advance(n=1)`."""
    console = err()
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=True, disable=not console.is_terminal)
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1, total=None: bar.update(task, advance=n, **({"total": total} if total else {}))


def track(items: Iterable, description: str, total: int | None = None) -> Iterator:
    with progress(description, total) as advance:
        for item in items:
            yield item
            advance()


DATABASE_HINT = "check --database-url or EXCHANGE_DATABASE_URL"


def describe(exc: BaseException) -> str | None:
    """The one line a person needs for an expected failure, or None for a bug."""
    from pydantic import ValidationError
    from sqlalchemy import exc as sa

    from exchange.errors import FhirError

    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = "EXCHANGE_" + "_".join(str(p) for p in first.get("loc", ())).upper()
        return f"{where}: {first['msg'].removeprefix('Value error, ')} (fix the variable or pass the option)"
    if isinstance(exc, (sa.ArgumentError, sa.NoSuchModuleError)) or (
            isinstance(exc, sa.InvalidRequestError) and "async" in str(exc)):
        return ("the database URL is not one the exchange can use: give sqlite+aiosqlite:///FILE.db or "
                f"postgresql+asyncpg://USER@HOST/DB ({DATABASE_HINT})")
    if isinstance(exc, sa.DBAPIError):
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        return f"the database refused: {reason} ({DATABASE_HINT})"
    if isinstance(exc, ConnectionError) or type(exc).__module__.startswith("asyncpg"):
        return f"cannot connect to the database: {exc} ({DATABASE_HINT})"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({DATABASE_HINT} if it names the database)"
    if isinstance(exc, FhirError):
        return exc.diagnostics
    return None


class ExchangeGroup(TyperGroup):
    """The root command: usage errors and expected failures become one `error:` line, never a traceback."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            result = super().main(args, prog_name or "exchange", complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else 0
        except _NO_ARGS as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
            code = 2
        except clickx.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "exchange"
            typer.echo(f"error: {exc.format_message()} (see '{where} --help')", err=True)
            code = 2
        except clickx.ClickException as exc:
            typer.echo(f"error: {exc.format_message()}", err=True)
            code = exc.exit_code
        except (typer.Abort, KeyboardInterrupt):
            typer.echo("error: interrupted", err=True)
            code = 130
        except Exception as exc:  # noqa: BLE001  (the point: no traceback reaches a person)
            from exchange.settings import get_settings

            message = describe(exc)
            if message is None and _want_traceback(get_settings):
                raise
            typer.echo(f"error: {message or _unexpected(exc)}", err=True)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


def _want_traceback(get_settings) -> bool:  # noqa: ANN001
    try:
        return get_settings().cli_traceback
    except Exception:  # noqa: BLE001  (broken settings were reported above)
        return False


def _unexpected(exc: BaseException) -> str:
    return (f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            "(a bug: set EXCHANGE_CLI_TRACEBACK=true for the traceback and report it)")
