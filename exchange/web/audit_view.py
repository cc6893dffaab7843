"""The auditor's view of the exchange log: filters, the chain check, and exports (CSV, and a PDF report with a
table and a chart of activity per day).

Every review goes through `exchange.audit.review.search` as the signed-in auditor, so it is itself recorded, and
sees only what the auditor role sees. The log holds ids and codes only; so do the exports.
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, fields as dataclass_fields
from datetime import date, datetime

from exchange.audit import review
from exchange.audit.chain import split_chain
from exchange.audit.checkpoint import Checkpoint, sign_checkpoint, stored_checkpoint
from exchange.audit.verify import Verdict, verify_database
from exchange.context import RequestContext
from exchange.fhir.dates import parse_fhir_date
from exchange.kernel.exchange import Exchange
from exchange.kernel.unit import Event, open_unit

PAGE = 50
EXPORT_MAX = 10_000  # records in one export; narrow the filters for more
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_REFERENCE = re.compile(r"^[A-Za-z]{1,64}/[A-Za-z0-9\-.]{1,64}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ACTIONS = ("C", "R", "U", "D", "E")
OUTCOMES = ("0", "4", "8", "12")


@dataclass
class Filters:
    organization: str = ""
    resource: str = ""
    action: str = ""
    outcome: str = ""
    since: str = ""  # a day, inclusive
    until: str = ""  # a day, inclusive
    page: int = 0

    @classmethod
    def from_query(cls, query: dict) -> "Filters":
        """Only well-formed values are kept: a filter never echoes arbitrary text back into the page."""
        out = cls()
        checks = {"organization": _ID, "resource": _REFERENCE, "since": _DAY, "until": _DAY}
        for name, pattern in checks.items():
            value = (query.get(name) or "").strip()
            if pattern.match(value):
                setattr(out, name, value)
        if query.get("action") in ACTIONS:
            out.action = query["action"]
        if query.get("outcome") in OUTCOMES:
            out.outcome = query["outcome"]
        page = query.get("page") or "0"
        out.page = int(page) if page.isdigit() and int(page) < 100_000 else 0
        return out

    def params(self) -> list[tuple[str, str]]:
        """As AuditEvent search parameters (newest first)."""
        out = [("_sort", "-date")]
        if self.organization:
            out.append(("agent", f"Organization/{self.organization}"))
        if self.resource:
            out.append(("entity", self.resource))
        if self.action:
            out.append(("action", self.action))
        if self.outcome:
            out.append(("outcome", self.outcome))
        if self.since:
            out.append(("date", f"ge{self.since}"))
        if self.until:
            out.append(("date", f"le{self.until}"))
        return out

    def query(self, page: int | None = None) -> str:
        """The filters as this page's query string (ids and codes only)."""
        from urllib.parse import urlencode

        values = {f.name: getattr(self, f.name) for f in dataclass_fields(self) if f.name != "page"}
        if page:
            values["page"] = str(page)
        return urlencode({k: v for k, v in values.items() if v})


@dataclass
class Row:
    seq: int | None
    recorded: datetime
    action: str
    subtype: str
    outcome: str
    outcome_desc: str
    organization: str
    person: str
    client: str
    entities: list[str]


def _row(resource: dict) -> Row:
    try:
        _content, seq, _hash = split_chain(resource)
    except ValueError:  # committed a moment ago and still queued for the linker: no place in the chain yet
        seq = None
    agents = resource.get("agent") or [{}]
    user = agents[0]
    client = ((agents[1] if len(agents) > 1 else {}).get("who") or {}).get("identifier", {}).get("value", "")
    entities = [e["what"]["reference"] for e in resource.get("entity", []) if "reference" in (e.get("what") or {})]
    return Row(seq=seq, recorded=parse_fhir_date(resource["recorded"])[0], action=resource.get("action", ""),
               subtype=(resource.get("subtype") or [{}])[0].get("code", ""), outcome=resource.get("outcome", ""),
               outcome_desc=resource.get("outcomeDesc", ""),
               organization=(user.get("who") or {}).get("reference", ""), person=user.get("altId", ""),
               client=client, entities=entities)


@dataclass
class Page:
    rows: list[Row]
    total: int
    page: int

    @property
    def has_next(self) -> bool:
        return (self.page + 1) * PAGE < self.total


async def search(exchange: Exchange, ctx: RequestContext, filters: Filters) -> Page:
    params = filters.params() + [("_count", str(PAGE)), ("_offset", str(filters.page * PAGE))]
    found, total, _query = await review.search(exchange, ctx, params)
    return Page([_row(s.resource) for s in found], total, filters.page)


async def export_rows(exchange: Exchange, ctx: RequestContext, filters: Filters) -> list[Row]:
    size = exchange.settings.max_page_size
    rows: list[Row] = []
    while len(rows) < EXPORT_MAX:
        found, total, _query = await review.search(exchange, ctx, filters.params() + [
            ("_count", str(size)), ("_offset", str(len(rows)))])
        rows += [_row(s.resource) for s in found]
        if not found or len(rows) >= total:
            break
    return rows[:EXPORT_MAX]


async def verify(exchange: Exchange, ctx: RequestContext) -> tuple[Verdict, Checkpoint | None]:
    """`exchange audit verify` for the auditor (recorded as an operation on the log) and the newest checkpoint
    (signed now if there is none yet, as `/.well-known/audit-checkpoint` does)."""
    review.viewer_of(ctx, "r")
    verdict = await verify_database(exchange)
    async with open_unit(exchange, ctx, "operation", "AuditEvent", read_only=True) as unit:
        unit.record(Event("operation", "E", "AuditEvent"))
    return verdict, await stored_checkpoint(exchange) or await sign_checkpoint(exchange)


COLUMNS = ("sequence", "recorded", "action", "subtype", "outcome", "outcome_desc", "organization", "person",
           "client", "entities")


def to_csv(rows: list[Row]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow(["" if r.seq is None else r.seq, r.recorded.isoformat(), r.action, r.subtype, r.outcome, r.outcome_desc,
                         r.organization, r.person, r.client, " ".join(r.entities)])
    return out.getvalue().encode()


def per_day(rows: list[Row]) -> list[tuple[date, int]]:
    counts = Counter(r.recorded.date() for r in rows)
    return sorted(counts.items())


def to_pdf(rows: list[Row], filters: Filters) -> bytes:
    """A report: the filters, a bar chart of records per day, and the table (fpdf2, core fonts: ids and codes)."""
    from fpdf import FPDF

    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 8, "GBV referral exchange - log report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    chosen = ", ".join(f"{k}={v}" for k, v in filters.params() if k != "_sort") or "none"
    pdf.cell(0, 6, f"Filters: {chosen}.  Records: {len(rows)}", new_x="LMARGIN", new_y="NEXT")
    days = per_day(rows)
    if days:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(0, 7, "Activity per day", new_x="LMARGIN", new_y="NEXT")
        top, height, left = pdf.get_y() + 2, 40.0, pdf.l_margin + 10
        width = min(18.0, (pdf.w - 2 * pdf.l_margin - 20) / len(days))
        peak = max(n for _, n in days)
        pdf.set_font("Helvetica", size=7)
        pdf.line(left, top + height, left + width * len(days), top + height)
        for i, (day, count) in enumerate(days):
            bar = height * count / peak
            pdf.set_fill_color(60, 90, 160)
            pdf.rect(left + i * width + 1, top + height - bar, width - 2, bar, style="F")
            pdf.text(left + i * width + 1, top + height - bar - 1, str(count))
            pdf.text(left + i * width + 1, top + height + 4, day.strftime("%m-%d"))
        pdf.set_y(top + height + 8)
    pdf.set_font("Helvetica", "B", 8)
    widths = (14, 40, 10, 30, 12, 30, 50, 50, 40)
    heads = ("seq", "recorded (UTC)", "act", "subtype", "outc.", "outcome", "organisation", "person", "first entity")
    for w, h in zip(widths, heads):
        pdf.cell(w, 6, h, border=1)
    pdf.ln()
    pdf.set_font("Helvetica", size=7)
    for r in rows:
        values = (str(r.seq) if r.seq is not None else "", r.recorded.strftime("%Y-%m-%d %H:%M:%S"), r.action,
                  r.subtype, r.outcome,
                  r.outcome_desc, r.organization, r.person, r.entities[0] if r.entities else "")
        for w, v in zip(widths, values):
            pdf.cell(w, 5, v[:40], border=1)
        pdf.ln()
    return bytes(pdf.output())
