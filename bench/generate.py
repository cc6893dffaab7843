"""The scale generator: a PostgreSQL database holding N referrals across many organisations, written by bulk COPY.

Nothing here re-derives the schema. The exchange itself builds the directory (organisations, services, clients, as
`exchange orgs add` and `exchange clients add` do) and, in a scratch database of its own, plays one referral of
each kind through its real write path (HTTP, real tokens, in-process ASGI): sent (requested), opened and
accepted, completed, rejected. Every row those referrals left in the store is captured (resource and version rows,
search-index rows, need-to-know parties, recorders, AuditEvents and their entities, web alerts); a table the
generator does not know growing is an error, so a write path that starts storing something new cannot be missed.
Each captured row becomes a template whose ids, organisations, clients, case code and times are slots; each kind's
rows of a table are compiled into one COPY text template (`Filler`: literal parts and slots, filled by one slice
assignment and a join in C, no per-row or per-cell Python), filled once per referral. Each table is loaded by a
session of its own in one transaction (TRUNCATE, the directory's rows put back, then one `COPY ... FREEZE` of all
generated rows: frozen and all-visible as written, so no VACUUM rewrites the pages afterwards), the secondary
indexes and keys dropped before and rebuilt after (the exchange's own definitions, read from the catalogue), then
ANALYZE. The audit records are hashed into the chain as they are made (as `exchange.audit.chain.link`), the head
advanced, and a checkpoint signed with the exchange's own code, so `exchange audit verify` passes.

The statistics facts (`referral_fact`) are not generated: the exchange derives them from the log in the background,
and a server started on the store reads the log into them (bench/stats_scale.py measures that first reading).

Referrals are spread over the past year, oldest first; the newest `--open-share` of them (inside the overdue
window, so the sweep has nothing to mark) are still open (requested or accepted), the others completed or rejected.

    .venv/bin/python bench/generate.py --referrals 1000000 --organisations 500
    .venv/bin/python bench/generate.py --referrals 200 --database-url postgresql+asyncpg://...:5432/scale_small

It writes `<state-dir>/world.json` (organisations, services and their clients' private keys) for `bench/scale.py`.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from itertools import chain
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lifecycle import BED_RESERVED  # noqa: E402
from world import ROOT, Party, World, build_world, drop_database, recreate_database  # noqa: E402

from exchange.referral import codes  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/exchange_scale"
REJECTED_TEXT = "No bed free this week; referred on"
REJECTED = {"coding": [{"system": codes.REFERRAL_OUTCOME, "code": "no-capacity"}], "text": REJECTED_TEXT}

# The tables a referral writes, in the order they are loaded; with the columns the generator fills (the others are
# numbered by the generator: search_index.row_id, web_alert.id, audit_event.entry/seq/hash/linked).
CAPTURED = ("resource", "resource_version", "search_index", "resource_party", "resource_recorder", "audit_event",
            "audit_entity", "web_alert")
# Tables that grow with requests, not with referrals (rate-limit windows, used assertion ids, revoked tokens).
NOT_PER_REFERRAL = ("rate_limit_window", "auth_used_jti", "auth_revoked_token", "condition_lock", "alembic_version")
ORDER_KEY = {"search_index": "row_id", "audit_event": "entry", "web_alert": "id"}
RENUMBERED = {"search_index": ("row_id",), "web_alert": ("id",), "audit_event": ("entry", "seq", "hash", "linked")}

UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
HEX_RE = r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"
INSTANT_RE = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"
TOKEN = re.compile(f"({UUID_RE})|({HEX_RE})|({INSTANT_RE})")


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


# --- the kinds of referral, played through the exchange ------------------------------------------------------------

def _accepted(task: dict) -> dict:
    return dict(task, status="accepted", businessStatus=BED_RESERVED)


KINDS: dict[str, list[str]] = {  # kind -> the steps after the hotline's transaction Bundle
    "requested": [],
    "accepted": ["open", "accept"],
    "completed": ["open", "accept", "complete"],
    "rejected": ["open", "reject"],
}
OPEN_KINDS = {"requested": 0.6, "accepted": 0.4}
CLOSED_KINDS = {"completed": 0.85, "rejected": 0.15}


@dataclass
class Played:
    kind: str
    ids: dict[str, str]  # resource type -> id
    case_code: str
    rows: dict[str, list[dict]] = field(default_factory=dict)  # table -> captured rows (as mappings)


async def _counts(conn, tables) -> dict[str, int]:  # noqa: ANN001
    from sqlalchemy import text

    return {t: int((await conn.execute(text(f'SELECT count(*) FROM "{t}"'))).scalar()) for t in tables}


async def _capture(conn, played: Played, marks: dict[str, int]) -> None:  # noqa: ANN001
    """The rows the referral `played` left: by its resources' ids, and (audit, alerts) by number past `marks`."""
    from sqlalchemy import text

    pairs = [(t, i) for t, i in played.ids.items()]
    by_resource = " OR ".join(f"(resource_type = '{t}' AND {{col}} = '{i}')" for t, i in pairs)
    queries = {
        "resource": f"SELECT * FROM resource WHERE {by_resource.format(col='id')}",
        "resource_version": f"SELECT * FROM resource_version WHERE {by_resource.format(col='id')} "
                            "ORDER BY last_updated, resource_type, version_id",
        "search_index": f"SELECT * FROM search_index WHERE {by_resource.format(col='resource_id')} ORDER BY row_id",
        "resource_party": f"SELECT * FROM resource_party WHERE {by_resource.format(col='resource_id')}",
        "resource_recorder": f"SELECT * FROM resource_recorder WHERE {by_resource.format(col='resource_id')}",
        "audit_event": f"SELECT * FROM audit_event WHERE entry > {marks['audit_event']} ORDER BY entry",
        "web_alert": f"SELECT * FROM web_alert WHERE id > {marks['web_alert']} ORDER BY id",
    }
    for table, sql in queries.items():
        played.rows[table] = [dict(r._mapping) for r in (await conn.execute(text(sql))).all()]
    event_ids = [r["id"] for r in played.rows["audit_event"]]
    played.rows["audit_entity"] = [dict(r._mapping) for r in (await conn.execute(text(
        "SELECT * FROM audit_entity WHERE event_id = ANY(:ids)"), {"ids": event_ids})).all()] if event_ids else []


async def play_kinds(url: str, state_dir: Path) -> tuple[World, list[Played]]:
    """In a scratch database: one hotline, one shelter, and one referral of each kind through the real write path
    (the in-process app over HTTP semantics, real tokens). Returns the world and what each referral stored."""
    import httpx
    from sqlalchemy import text

    from exchange.main import create_app
    from exchange.settings import Settings
    from exchange.store.tables import metadata
    from exchange.main import build
    from lifecycle import OUTPUT, Load, Samples

    await recreate_database(url)
    settings = Settings(database_url=url, state_dir=state_dir, host="127.0.0.1", port=8080,
                        referral_sweep_seconds=0)
    world = await build_world(settings, 1, 1)
    exchange = build(settings)
    app = create_app(settings, exchange)
    played: list[Played] = []
    try:
        async with app.router.lifespan_context(app):
            load = Load("http://127.0.0.1:8080", world, 1, None)
            await load.http.aclose()
            load.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
                                          timeout=60)
            await load.authorise()
            hotline, shelter = world.hotlines[0], world.shelters[0]
            async with exchange.db.engine.connect() as conn:
                tables = [t for t in (await conn.execute(text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))).scalars()]
            unknown = set(metadata.tables) - set(tables)
            if unknown:
                raise SystemExit(f"tables of the exchange missing after migration: {sorted(unknown)}")
            for number, (kind, steps) in enumerate(KINDS.items(), 1):
                async with exchange.db.engine.connect() as conn:
                    before = await _counts(conn, tables)
                    marks = {t: int((await conn.execute(text(f"SELECT coalesce(max({ORDER_KEY[t]}), 0) FROM {t}")))
                                    .scalar()) for t in ("audit_event", "web_alert")}
                samples = Samples()
                bundle = load.referrals.bundle(hotline, shelter, number)
                case_code = next(e["resource"]["identifier"][0]["value"] for e in bundle["entry"]
                                 if e["resource"]["resourceType"] == "Patient")
                r = await load._call(load.http, samples, "transaction", hotline, "POST", "", 200, bundle)
                ids = dict(e["response"]["location"].split("/")[:2] for e in r.json()["entry"])
                task_path, etag, task = f"/Task/{ids['Task']}", 'W/"1"', None
                for step in steps:
                    if step == "open":
                        task = (await load._call(load.http, samples, step, shelter, "GET", task_path, 200)).json()
                        continue
                    body = {"accept": lambda t: _accepted(t),
                            "complete": lambda t: dict(t, status="completed", output=OUTPUT),
                            "reject": lambda t: dict(t, status="rejected", statusReason=REJECTED),
                            }[step](task)
                    r = await load._call(load.http, samples, step, shelter, "PUT", task_path, 200, body, {"If-Match": etag})
                    task, etag = r.json(), r.headers["ETag"]
                if samples.errors:
                    raise SystemExit(f"the exchange refused the {kind} referral: {samples.error_examples}")
                one = Played(kind, ids, case_code)
                async with exchange.db.engine.connect() as conn:
                    after = await _counts(conn, tables)
                    await _capture(conn, one, marks)
                grown = {t for t in tables if after[t] != before[t]}
                strange = grown - set(CAPTURED) - set(NOT_PER_REFERRAL)
                if strange:
                    raise SystemExit(f"a referral now writes to {sorted(strange)}: teach bench/generate.py these "
                                     "tables before generating")
                for table in CAPTURED:
                    if after[table] - before[table] != len(one.rows[table]):
                        raise SystemExit(f"{table}: {after[table] - before[table]} new rows, "
                                         f"{len(one.rows[table])} captured")
                played.append(one)
            await load.http.aclose()
    finally:
        await exchange.db.dispose()
    return world, played


# --- templates -------------------------------------------------------------------------------------------------

def _instant_format(literal: str) -> Callable[[datetime], str]:
    """How the exchange wrote this instant: milliseconds and Z (meta, audit), or seconds and +00:00 (authoredOn)."""
    if literal.endswith("Z") and "." in literal:
        digits = len(literal.rsplit(".", 1)[1]) - 1
        spec = {3: "milliseconds", 6: "microseconds"}[digits]
        return lambda dt: dt.isoformat(timespec=spec) + "Z"
    if literal.endswith("+00:00") and "." not in literal:
        return lambda dt: dt.isoformat(timespec="seconds") + "+00:00"
    raise SystemExit(f"an instant in a form the generator does not know: {literal}")


class Slots:
    """The variable parts of one played referral: each becomes a named slot of its templates."""

    def __init__(self, played: Played, world: World, window: tuple[datetime, datetime]) -> None:
        hotline, shelter = world.hotlines[0], world.shelters[0]
        self.known = {hotline.organization_id: "hotline", shelter.organization_id: "shelter",
                      shelter.service_id: "service", hotline.client_id: "hotline_client",
                      shelter.client_id: "shelter_client", played.case_code: "case"}
        self.known.update({rid: f"id_{rtype}" for rtype, rid in played.ids.items()})
        self.fresh: dict[str, str] = {}  # other uuids (audit ids, request ids) and 32-hex ids (tokens)
        self.instants: dict[str, tuple[str, datetime, Callable[[datetime], str]]] = {}  # literal -> slot, time, form
        self.window = window
        self.pattern = re.compile(f"({re.escape(played.case_code)})|" + TOKEN.pattern)

    def _instant(self, literal: str) -> str | None:
        parsed = datetime.fromisoformat(literal.replace("Z", "+00:00")).astimezone(timezone.utc).replace(tzinfo=None)
        if not (self.window[0] <= parsed <= self.window[1]):
            return None  # a time from the example itself (consent date): the same in every referral
        if literal not in self.instants:
            self.instants[literal] = (f"t{len(self.instants)}", parsed, _instant_format(literal))
        return self.instants[literal][0]

    def template(self, value: str) -> str:
        """`value` as a str.format template: braces doubled, slots as {name}."""
        out, at = [], 0
        for m in self.pattern.finditer(value):
            literal = m.group(0)
            if literal in self.known:
                slot = self.known[literal]
            elif m.group(4):
                slot = self._instant(literal)
            else:
                kind = "uuid" if m.group(2) else "hex"
                slot = self.fresh.setdefault(literal, f"{kind}{len(self.fresh)}")
            if slot is None:
                continue
            out.append(value[at:m.start()].replace("{", "{{").replace("}", "}}"))
            out.append("{" + slot + "}")
            at = m.end()
        out.append(value[at:].replace("{", "{{").replace("}", "}}"))
        return "".join(out)


@dataclass
class Template:
    """One kind of referral as row templates: per table, per row, per column a constant, a str.format template of
    slots, or a time offset from the referral's start."""
    kind: str
    tables: dict[str, list[list[tuple[str, Any]]]]
    columns: dict[str, list[str]]
    instants: dict[str, tuple[timedelta, Callable[[datetime], str]]]  # slot -> (offset, format)
    fresh: list[str]
    start: datetime


def table_columns(table: str) -> list[str]:
    """The columns of the exchange's own table definition that a template fills (not those numbered on load)."""
    import exchange.main  # noqa: F401 - every package declares its tables on the shared metadata
    from exchange.store.tables import metadata

    return [c.name for c in metadata.tables[table].columns if c.name not in RENUMBERED.get(table, ())]


def build_template(played: Played, world: World) -> Template:
    times = [v for rows in played.rows.values() for r in rows for v in r.values() if isinstance(v, datetime)]
    start = min(times)
    slots = Slots(played, world, (start - timedelta(seconds=5), max(times) + timedelta(seconds=5)))
    tables: dict[str, list] = {}
    columns: dict[str, list[str]] = {}
    for table in CAPTURED:
        rows = played.rows[table]
        cols = table_columns(table)
        columns[table] = cols
        out = []
        for row in rows:
            cells = []
            for col in cols:
                value = row[col]
                if isinstance(value, datetime):
                    cells.append(("offset", value - start))
                elif isinstance(value, str):
                    tpl = slots.template(value)
                    cells.append(("const", value) if "{" not in tpl.replace("{{", "") else ("format", tpl))
                else:
                    cells.append(("const", value))
            out.append(cells)
        tables[table] = out
    # audit content must stay canonical after filling: slots only ever replace string values by strings of the
    # same alphabet (ids, instants), so key order and escaping cannot change.
    instants = {name: (parsed - start, fmt) for name, parsed, fmt in slots.instants.values()}
    return Template(played.kind, tables, columns, instants, list(slots.fresh.values()), start)


# --- generation -----------------------------------------------------------------------------------------------------

def _fast_uuid() -> str:
    """A random (version 4) UUID, as `str(uuid.uuid4())` but without its object."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


@dataclass
class Plan:
    """When each referral happens, who sends it to whom, and what became of it."""
    referrals: int
    open_share: float
    now: datetime
    span: timedelta = timedelta(days=365)
    open_window: timedelta = timedelta(hours=48)

    def start_of(self, number: int) -> datetime:
        """Referral `number` (0 = oldest). The open ones fill the last `open_window`, the rest the year before."""
        open_count = max(1, int(self.referrals * self.open_share))
        closed = self.referrals - open_count
        if number < closed:
            first = self.now - self.span
            step = (self.span - self.open_window) / max(closed, 1)
            at = first + step * number
        else:
            step = (self.open_window - timedelta(minutes=10)) / open_count
            at = self.now - self.open_window + step * (number - closed)
        return at.replace(microsecond=0)

    def kind_of(self, number: int, rng: random.Random) -> str:
        open_count = max(1, int(self.referrals * self.open_share))
        choices = OPEN_KINDS if number >= self.referrals - open_count else CLOSED_KINDS
        return rng.choices(list(choices), weights=list(choices.values()))[0]


# --- COPY text templates: one referral's rows of a table in one str.format template -------------------------------

def _escape(value: str) -> str:
    """A string as a COPY text field (backslash, tab, newline and carriage return escaped)."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _needs_escape(value: str) -> bool:
    return "\\" in value or "\t" in value or "\n" in value or "\r" in value


def _constant(value: Any) -> str:
    """A constant cell in COPY text form, braces doubled (it becomes part of a str.format template)."""
    if value is None:
        text = "\\N"
    elif isinstance(value, bool):
        text = "t" if value else "f"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = _escape(value)
    else:
        raise SystemExit(f"a captured cell of a type the generator does not know: {value!r}")
    return text.replace("{", "{{").replace("}", "}}")


class Filler:
    """A str.format template (slots and doubled braces) compiled for filling many times: its literal parts with the
    slots between them, filled by one slice assignment and joined in C (`str.format_map` parses the template again
    on every call, five times slower). Not for two threads at once."""

    def __init__(self, template: str) -> None:
        from operator import itemgetter
        from string import Formatter

        parts, names = [""], []  # literal, slot, literal, ..., literal
        for literal, name, spec, conversion in Formatter().parse(template):
            if spec or conversion:
                raise SystemExit(f"a slot with a format spec: {name}")
            parts[-1] += literal
            if name is not None:
                names.append(name)
                parts.extend(["", ""])
        self.parts = parts
        self.names = names
        self.getter = itemgetter(*names, *names[:1]) if names else None  # (two names: itemgetter gives a tuple)

    def __call__(self, values: dict[str, str]) -> str:
        parts = self.parts
        if self.names:
            parts[1:2 * len(self.names):2] = self.getter(values)[:len(self.names)]
        return "".join(parts)


@dataclass
class CopyTemplate:
    """One kind of referral as COPY text: per table (audit_event apart) one template of all its rows; per audit
    record a template of its content (hashed as filled) and one of its line. Times are slots `d<n>` (an offset from
    the referral's start), the other slots those of `Template`. Every slot value is a str."""
    kind: str
    tables: dict[str, Filler]
    audit: list[tuple[Filler, Filler]]  # (content, line with the slots entry, hash and content)
    offsets: dict[str, timedelta]
    instants: dict[str, tuple[timedelta, Callable[[datetime], str]]]
    fresh: list[str]


def compile_template(template: Template) -> CopyTemplate:
    offsets: dict[timedelta, str] = {}

    def cell(kind: str, value: Any) -> str:
        if kind == "offset":
            return "{" + offsets.setdefault(value, f"d{len(offsets)}") + "}"
        if kind == "format":
            return _escape(value)  # (slots hold ids, codes and instants: nothing COPY would escape)
        return _constant(value)

    tables: dict[str, Filler] = {}
    audit: list[tuple[Filler, Filler]] = []
    for table, rows in template.tables.items():
        columns = template.columns[table]
        if table == "audit_event":
            content_at, recorded_at = columns.index("content"), columns.index("recorded")
            for cells in rows:
                kind, value = cells[content_at]
                content = value if kind == "format" else value.replace("{", "{{").replace("}", "}}")
                line = ["{entry}", "{entry}"] + ["{content}" if i == content_at else cell(*c)
                                                 for i, c in enumerate(cells)] + ["{hash}", cell(*cells[recorded_at])]
                audit.append((Filler(content), Filler("\t".join(line) + "\n")))
            continue
        tables[table] = Filler("".join("\t".join(cell(*c) for c in cells) + "\n" for cells in rows))
    return CopyTemplate(template.kind, tables, audit, {name: offset for offset, name in offsets.items()},
                        template.instants, template.fresh)


def copy_columns(template: Template, table: str) -> list[str]:
    """The columns of a table's COPY (search_index.row_id and web_alert.id are left to their sequences)."""
    if table == "audit_event":
        return ["entry", "seq", *template.columns[table], "hash", "linked"]
    return list(template.columns[table])


class Generator:
    """Fills the templates, referral after referral: one string per table and batch, the audit records chained."""

    def __init__(self, templates: dict[str, CopyTemplate], world: World, plan: Plan, seed: int = 7) -> None:
        self.templates = templates
        self.world = world
        self.plan = plan
        self.rng = random.Random(seed)
        self.entry = 0  # audit_event.entry and seq
        self.head = "0" * 64
        from exchange.audit.chain import GENESIS, link

        if link(GENESIS, 7, b"{}") != hashlib.sha256(f"{GENESIS}\n7\n".encode() + b"{}").hexdigest():
            raise SystemExit("exchange.audit.chain.link hashes otherwise than Generator.batch does")
        for party in [*world.hotlines, *world.shelters]:
            for value in (party.organization_id, party.client_id, party.service_id or ""):
                if _needs_escape(value) or "{" in value:
                    raise SystemExit(f"a directory id COPY would have to escape: {value!r}")

    def batch(self, first: int, last: int) -> dict[str, list[str]]:
        """Referrals first..last-1 as COPY text, per table a list of chunks."""
        out: dict[str, list[str]] = {t: [] for t in CAPTURED}
        audit = out["audit_event"]
        hotlines, shelters = self.world.hotlines, self.world.shelters
        rng, plan, sha256, urandom = self.rng, self.plan, hashlib.sha256, os.urandom
        entry, head = self.entry, self.head
        for number in range(first, last):
            template = self.templates[plan.kind_of(number, rng)]
            hotline = hotlines[rng.randrange(len(hotlines))]
            shelter = shelters[rng.randrange(len(shelters))]
            start = plan.start_of(number)
            values = {"": "", "hotline": hotline.organization_id, "shelter": shelter.organization_id,
                      "service": shelter.service_id, "hotline_client": hotline.client_id,
                      "shelter_client": shelter.client_id, "case": f"HTL-{number:07d}-{urandom(3).hex()}",
                      "id_Patient": _fast_uuid(), "id_Consent": _fast_uuid(), "id_ServiceRequest": _fast_uuid(),
                      "id_Task": _fast_uuid()}
            for name in template.fresh:
                values[name] = _fast_uuid() if name[0] == "u" else urandom(16).hex()
            for name, (offset, fmt) in template.instants.items():
                values[name] = fmt(start + offset)
            for name, offset in template.offsets.items():
                values[name] = (start + offset).isoformat(sep=" ")
            for table, text in template.tables.items():
                out[table].append(text(values))
            for content_template, line in template.audit:
                entry += 1
                content = content_template(values)
                head = sha256(f"{head}\n{entry}\n".encode() + content.encode()).hexdigest()  # audit.chain.link
                values["entry"], values["hash"] = str(entry), head
                values["content"] = _escape(content) if _needs_escape(content) else content
                audit.append(line(values))
        self.entry, self.head = entry, head
        return out


def _fill_sent(template: Template) -> None:
    """A deployment with a mail relay has sent the alerts of past referrals: `sent` = when they were made."""
    cols = template.columns["web_alert"]
    if not cols:
        return
    created, sent = cols.index("created"), cols.index("sent")
    for cells in template.tables["web_alert"]:
        cells[sent] = cells[created]


# --- loading ---------------------------------------------------------------------------------------------------------

async def _drop_keys_and_indexes(conn, tables: tuple[str, ...]) -> list[str]:  # noqa: ANN001
    """Drop the primary keys, unique constraints and indexes of `tables`; return the SQL that recreates them."""
    constraints = await conn.fetch(
        "SELECT c.conname, c.conrelid::regclass::text AS tbl, pg_get_constraintdef(c.oid) AS def FROM pg_constraint c "
        "WHERE c.conrelid::regclass::text = ANY($1::text[]) AND c.contype IN ('p', 'u')", list(tables))
    indexes = await conn.fetch(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def, "
        "pg_relation_size(i.indrelid) AS size FROM pg_index i "
        "WHERE i.indrelid::regclass::text = ANY($1::text[]) AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)", list(tables))
    for row in indexes:
        await conn.execute(f'DROP INDEX "{row["name"]}"')
    for row in constraints:
        await conn.execute(f'ALTER TABLE "{row["tbl"]}" DROP CONSTRAINT "{row["conname"]}"')
    return ([f'ALTER TABLE "{r["tbl"]}" ADD CONSTRAINT "{r["conname"]}" {r["def"]}' for r in constraints]
            + [r["def"] for r in indexes])


async def _columns(conn, table: str) -> list[str]:  # noqa: ANN001
    return [r["column_name"] for r in await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position", table)]


class Stream:
    """One table's load: in one transaction, the table emptied (TRUNCATE), the rows it held put back, and the
    generated rows COPYed after them; `COPY ... FREEZE` (allowed after a TRUNCATE in the same transaction) writes
    them frozen and all-visible, so no VACUUM has to rewrite 30 GB of pages afterwards."""

    def __init__(self, conn, table: str, columns: list[str]) -> None:  # noqa: ANN001
        self.conn, self.table, self.columns = conn, table, columns
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)
        self.task: asyncio.Task | None = None
        self.bytes = 0

    async def _chunks(self):  # noqa: ANN202
        while (chunk := await self.queue.get()) is not None:
            self.bytes += len(chunk)
            yield chunk

    async def start(self) -> None:
        import io

        held = io.BytesIO()
        await self.conn.copy_from_table(self.table, output=held, format="text")
        transaction = self.conn.transaction()
        await transaction.start()
        await self.conn.execute(f'TRUNCATE "{self.table}"')
        await self.conn.copy_to_table(self.table, source=io.BytesIO(held.getvalue()), format="text", freeze=True)

        async def load() -> None:
            try:
                await self.conn.copy_to_table(self.table, source=self._chunks(), columns=self.columns,
                                              format="text", freeze=True)
            except BaseException:
                await transaction.rollback()
                raise
            await transaction.commit()

        self.task = asyncio.ensure_future(load())

    async def put(self, chunk: bytes | None) -> None:
        assert self.task is not None
        if self.task.done():
            self.task.result()  # the COPY failed: raise its error here
        await self.queue.put(chunk)


async def generate(args: argparse.Namespace) -> dict:
    import asyncpg
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from exchange.audit.checkpoint import sign_checkpoint
    from exchange.settings import Settings
    from exchange.main import build

    report: dict = {"referrals": args.referrals, "organisations": args.organisations}
    state_dir = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    scratch = f"{args.database_url}_kinds"
    try:
        scratch_world, played = await play_kinds(scratch, state_dir / "kinds")
    finally:
        await drop_database(scratch)
    timings["play kinds through the exchange"] = time.perf_counter() - started

    started = time.perf_counter()
    await recreate_database(args.database_url)
    settings = Settings(database_url=args.database_url, state_dir=state_dir / "var", host="127.0.0.1", port=8080)
    hotlines = max(1, args.organisations // 5)
    world = await build_world(settings, hotlines, args.organisations - hotlines, concurrency=8)
    save_world(world, state_dir / "world.json")
    timings["directory and clients through the exchange"] = time.perf_counter() - started

    templates = {p.kind: build_template(p, scratch_world) for p in played}
    for template in templates.values():
        _fill_sent(template)
    report["rows_per_referral"] = {kind: sum(len(rows) for rows in t.tables.values()) for kind, t in templates.items()}
    plan = Plan(args.referrals, args.open_share, datetime.now(timezone.utc).replace(tzinfo=None))
    gen = Generator({kind: compile_template(t) for kind, t in templates.items()}, world, plan, args.seed)
    columns = {t: copy_columns(next(iter(templates.values())), t) for t in CAPTURED}

    dsn = _dsn(args.database_url)
    conn = await asyncpg.connect(dsn)
    streams: list[Stream] = []
    try:
        head = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1")
        gen.entry, gen.head = int(head["seq"]), head["hash"]
        if await conn.fetchval("SELECT count(*) FROM audit_event WHERE seq IS NULL"):
            raise SystemExit("the directory's audit records are not all linked")
        if int(await conn.fetchval("SELECT coalesce(max(entry), 0) FROM audit_event")) != gen.entry:
            raise SystemExit("audit entries and chain positions differ in the directory's log")
        renumbered = {"search_index": {"row_id"}, "web_alert": {"id"}}
        for table in CAPTURED:  # every column the exchange's table has is filled, or numbered by its sequence
            missing = set(await _columns(conn, table)) - set(columns[table]) - renumbered.get(table, set())
            if missing:
                raise SystemExit(f"{table}: columns {sorted(missing)} were not captured")
        started = time.perf_counter()
        recreate = await _drop_keys_and_indexes(conn, CAPTURED)
        timings["drop keys and indexes"] = time.perf_counter() - started

        started = time.perf_counter()
        for table in CAPTURED:
            each = await asyncpg.connect(dsn)
            await each.execute("SET synchronous_commit = off")
            streams.append(Stream(each, table, columns[table]))
        for stream in streams:
            await stream.start()
        by_table = {s.table: s for s in streams}
        batch = max(1, args.batch)
        loop = asyncio.get_running_loop()
        making = making_cpu = 0.0

        def make(first: int) -> dict[str, bytes]:  # in a thread: the loop keeps feeding the COPYs meanwhile
            nonlocal making, making_cpu
            began, began_cpu = time.perf_counter(), time.thread_time()
            out = {t: "".join(chunks).encode() for t, chunks in
                   gen.batch(first, min(first + batch, args.referrals)).items()}
            making += time.perf_counter() - began
            making_cpu += time.thread_time() - began_cpu
            return out

        with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      disable=args.quiet) as progress:
            bar = progress.add_task("referrals", total=args.referrals)
            firsts = list(range(0, args.referrals, batch))
            ahead = loop.run_in_executor(None, make, firsts[0]) if firsts else None
            for i, first in enumerate(firsts):  # batches made in order (the chain), one ahead of the COPYs
                out = await ahead
                ahead = loop.run_in_executor(None, make, firsts[i + 1]) if i + 1 < len(firsts) else None
                for table, chunk in out.items():
                    if chunk:
                        await by_table[table].put(chunk)
                progress.update(bar, completed=min(first + batch, args.referrals))
            for stream in streams:
                await stream.put(None)
            await asyncio.gather(*(s.task for s in streams))
        timings["generate and COPY"] = time.perf_counter() - started
        timings["of which making rows (Python)"] = making
        timings["of which making rows: CPU"] = making_cpu
        report["copy_bytes"] = sum(s.bytes for s in streams)

        started = time.perf_counter()
        queue = sorted(recreate, key=lambda sql: sql.startswith("CREATE"))  # keys first: they may wait, no more

        async def rebuild(each) -> None:  # noqa: ANN001
            await each.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
            while queue:
                await each.execute(queue.pop(0))

        await asyncio.gather(*(rebuild(s.conn) for s in streams[:max(1, args.connections)]))
        timings["rebuild keys and indexes"] = time.perf_counter() - started

        started = time.perf_counter()
        await conn.execute("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", gen.entry, gen.head)
        await conn.execute("SELECT setval(pg_get_serial_sequence('audit_event', 'entry'), $1)", max(gen.entry, 1))
        await conn.execute("ANALYZE")  # (the loaded pages are frozen and all-visible already: no VACUUM)
        timings["analyze"] = time.perf_counter() - started
        report["rows"] = int(await conn.fetchval(
            "SELECT sum(reltuples)::bigint FROM pg_class WHERE relkind = 'r' AND relname = ANY($1::text[])",
            list(CAPTURED)))
        report["database_bytes"] = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        report["table_bytes"] = {r["t"]: int(r["b"]) for r in await conn.fetch(
            "SELECT relname AS t, pg_total_relation_size(oid) AS b FROM pg_class WHERE relkind = 'r' AND "
            "relname = ANY($1::text[])", list(CAPTURED))}
    finally:
        for stream in streams:
            if stream.task is not None and not stream.task.done():
                stream.task.cancel()
            await stream.conn.close()
        await conn.close()
    exchange = build(settings)
    try:
        checkpoint = await sign_checkpoint(exchange)
        report["checkpoint_tree_size"] = checkpoint.tree_size
    finally:
        await exchange.db.dispose()
    report["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    report["audit_records"] = gen.entry
    load_s = timings["generate and COPY"] + timings["rebuild keys and indexes"]
    report["referrals_per_s"] = round(args.referrals / load_s, 1) if load_s else None
    report["rows_per_s"] = round(report["rows"] / load_s, 1) if load_s else None
    return report



def save_world(world: World, path: Path) -> None:
    def party(p: Party) -> dict:
        return {"organization_id": p.organization_id, "client_id": p.client_id, "service_id": p.service_id,
                "key": p.key.as_dict(private=True)}

    path.write_bytes(orjson.dumps({"hotlines": [party(p) for p in world.hotlines],
                                   "shelters": [party(p) for p in world.shelters],
                                   "auditor": party(world.auditor)}, option=orjson.OPT_INDENT_2))


def load_world(path: Path) -> World:
    from joserfc.jwk import ECKey

    data = orjson.loads(path.read_bytes())

    def party(d: dict) -> Party:
        return Party(d["organization_id"], d["client_id"], ECKey.import_key(d["key"]), d.get("service_id"))

    return World([party(d) for d in data["hotlines"]], [party(d) for d in data["shelters"]], party(data["auditor"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL,
                        help="the scale database: dropped and created anew (and <url>_kinds, a scratch database)")
    parser.add_argument("--referrals", type=int, default=1_000_000)
    parser.add_argument("--organisations", type=int, default=500, help="a fifth hotlines, the rest shelters")
    parser.add_argument("--open-share", type=float, default=0.02, help="the newest referrals still open")
    parser.add_argument("--batch", type=int, default=2000, help="referrals made at a time (one chunk per table)")
    parser.add_argument("--connections", type=int, default=2, help="sessions rebuilding the keys and indexes")
    parser.add_argument("--maintenance-work-mem", default="1GB", help="of each session rebuilding an index")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--state-dir", type=Path, default=ROOT / "var" / "scale")
    parser.add_argument("--json", type=Path, default=None, help="write the report here as JSON as well")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    report = asyncio.run(generate(args))
    report["total_s"] = round(time.perf_counter() - started, 1)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
