"""`exchange stats`: the referral statistics of a period as a table (or JSON), computed as the server does and
recorded in the exchange log as the exchange's own request."""
from __future__ import annotations

import asyncio
from typing import Optional

import typer

from exchange.cli_support import DatabaseOption
from exchange.console import JsonOption, out, print_json

BREAKDOWN_HELP = "month | service-type | area | priority | organization"
COLUMNS = (("referrals", "Sent"), ("awaiting", "Awaiting"), ("accepted", "Accepted"), ("completed", "Completed"),
           ("failed", "Failed"), ("declined", "Declined"), ("cancelled", "Cancelled"))


def _text(value) -> str:  # noqa: ANN001
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{round(value * 100)}%"


def _print(report: dict) -> None:
    from rich.table import Table

    period = report["period"]
    title = (f"Referrals sent {period['start']} to {period['end']}, by {report['breakdown']}  "
             f"(counts below {report['threshold']} shown as {report['small_cells']}; \"suppressed\": hidden so "
             "that no total gives one away)")
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, header_style="bold")
    for heading in ("", *(h for _, h in COLUMNS), "Accepted %", "No answer by deadline", "Hours to acknowledge",
                    "to decide", "to complete"):
        table.add_column(heading, overflow="fold")
    for row in [*report["rows"], report["total"]]:
        hours = row["median_hours"]
        table.add_row(row["label"] or row.get("category") or "", *(_text(row.get(k)) for k, _ in COLUMNS),
                      _percent(row["acceptance_rate"]), _percent(row["no_answer_by_deadline_share"]),
                      _text(hours["acknowledge"]), _text(hours["decide"]), _text(hours["complete"]),
                      end_section=row is report["rows"][-1] if report["rows"] else False)
    console = out()
    console.print(table)
    for kind, reasons in report["reasons"].items():
        if reasons:
            lines = ", ".join(f"{r['label']} {r['total']}" for r in reasons)
            console.print(f"{kind.capitalize()} because: {lines}", highlight=False)
    if not report["complete"]:
        console.print("(the statistics are still reading the exchange log: run again for the newest changes)")


def stats(by: str = typer.Option("month", "--by", help=BREAKDOWN_HELP),
          start: Optional[str] = typer.Option(None, help="First day (YYYY-MM-DD) or month (YYYY-MM); default: "
                                                         "twelve months ago"),
          end: Optional[str] = typer.Option(None, help="Last day or month, included; default: this month"),
          database_url: Optional[str] = DatabaseOption, as_json: bool = JsonOption) -> None:
    """Referral statistics with disclosure control: counts by outcome, acceptance rate, median hours, reasons."""
    from exchange.cli_support import run_with_exchange, settings_with
    from exchange.context import system_context
    from exchange.errors import FhirError
    from exchange.stats.service import referral_statistics

    pairs = [("by", by)] + [(k, v) for k, v in (("start", start), ("end", end)) if v is not None]

    async def work(exchange):  # noqa: ANN001, ANN202
        return (await referral_statistics(exchange, system_context(), pairs)).as_json()

    try:
        report = asyncio.run(run_with_exchange(settings_with(database_url), work))
    except FhirError as error:
        hint = error.issues[0].expression[0] if error.issues and error.issues[0].expression else None
        raise typer.BadParameter(error.diagnostics, param_hint=f"--{hint}" if hint else None) from None
    if as_json:
        print_json(report)
    else:
        _print(report)
