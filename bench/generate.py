"""The scale generator: a PostgreSQL database holding N referrals across many organisations, written by bulk COPY.

Nothing here re-derives the schema. The exchange itself builds the directory (organisations, services, clients, as
`exchange orgs add` and `exchange clients add` do) and, in a scratch database of its own, plays one referral of
each kind through its real write path (HTTP, real tokens, in-process ASGI): sent (requested), opened and
accepted, completed, rejected. Every row those referrals left in the store is captured (resource and version rows,
search-index rows, need-to-know parties, recorders, AuditEvents and their entities, web alerts); a table the
generator does not know growing is an error, so a write path that starts storing something new cannot be missed.
Each captured row becomes a template whose ids, organisations, clients, case code and times are slots; each kind's
rows of a table are compiled into one COPY text template (`Filler`: literal parts and slots, filled by one slice
assignment and a join in C, no per-row or per-cell Python), filled once per referral, a batch of referrals at a
time by `--workers` forked processes; this process only hashes each batch's audit records into the chain, in order
(as `exchange.audit.chain.link`). Each table is loaded by a session of its own in one transaction (TRUNCATE, the
directory's rows put back, then one `COPY ... FREEZE` of all generated rows: frozen and all-visible as written, so
no VACUUM rewrites the pages afterwards), all tables at once; the secondary indexes and keys are dropped before and
built after (the exchange's own definitions, read from the catalogue) by `--connections` sessions at once, the
builds of the most rows first, each key built as its unique index and attached after, then ANALYZE. The head is
advanced and a checkpoint signed with the exchange's own code, so `exchange audit verify` passes.

Settings: PostgreSQL's durability stays as configured (fsync, full_page_writes, the server's synchronous_commit).
The loading sessions set, for themselves only, `synchronous_commit = off` (a COPY's commit does not wait for its
WAL flush; a crash would lose the load, never corrupt it) and, to build, `maintenance_work_mem`
(`--maintenance-work-mem`) and, with `--maintenance-workers`, `max_parallel_maintenance_workers`. The
generated database is created with `default_toast_compression = lz4` (`--toast-compression`; PostgreSQL's default
is pglz): the audit records, about 2 KB of JSON each, are compressed when stored, by the exchange's writes into the
store as by the load, and lz4 takes about half the CPU of pglz to do it (the load's costliest COPY).

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
# numbered by the generator: web_alert.id, audit_event.entry).
CAPTURED = ("resource", "resource_version", "search_index", "resource_party", "resource_recorder", "audit_event",
            "audit_entity", "web_alert")
# The linker's tables: the chain positions are made by the generator from the records it makes (`Generator.chain`),
# and the queue holds none of them (every generated record is linked).
LINKER = ("audit_chain", "audit_queue")
CHAIN_COLUMNS = ["entry", "seq", "hash", "linked"]
LOADED = (*CAPTURED, "audit_chain")  # the tables a generation COPYs into
# Tables that grow with requests, not with referrals (rate-limit windows, used assertion ids, revoked tokens).
NOT_PER_REFERRAL = ("rate_limit_window", "auth_used_jti", "auth_revoked_token", "condition_lock", "alembic_version")
ORDER_KEY = {"audit_event": "entry", "web_alert": "id"}
RENUMBERED = {"web_alert": ("id",), "audit_event": ("entry",)}

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
        "search_index": f"SELECT * FROM search_index WHERE {by_resource.format(col='resource_id')} "
                        "ORDER BY resource_type, resource_id, param, system, value, text, date_start",  # (no key)
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
            load = Load("http://127.0.0.1:8080", world, 1, None, http=httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)), timeout=60))
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
                strange = grown - set(CAPTURED) - set(NOT_PER_REFERRAL) - set(LINKER)
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
    record a template of its content (hashed as filled), of its audit_event line, and two of its audit_chain line,
    before and after its hash. Times are slots `d<n>` (an offset from the referral's start), the other slots those of
    `Template`. Every slot value is a str."""
    kind: str
    tables: dict[str, Filler]
    # (content, its audit_event line (slots entry and content), its audit_chain line up to its hash, after)
    audit: list[tuple[Filler, Filler, Filler, Filler]]
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
    audit: list[tuple[Filler, Filler, Filler, Filler]] = []
    for table, rows in template.tables.items():
        columns = template.columns[table]
        if table == "audit_event":
            content_at, recorded_at = columns.index("content"), columns.index("recorded")
            for cells in rows:
                kind, value = cells[content_at]
                content = value if kind == "format" else value.replace("{", "{{").replace("}", "}}")
                line = ["{entry}"] + ["{content}" if i == content_at else cell(*c) for i, c in enumerate(cells)]
                audit.append((Filler(content), Filler("\t".join(line) + "\n"), Filler("{entry}\t{entry}\t"),
                              Filler("\t" + cell(*cells[recorded_at]) + "\n")))  # (linked: when recorded)
            continue
        tables[table] = Filler("".join("\t".join(cell(*c) for c in cells) + "\n" for cells in rows))
    return CopyTemplate(template.kind, tables, audit, {name: offset for offset, name in offsets.items()},
                        template.instants, template.fresh)


def copy_columns(template: Template, table: str) -> list[str]:
    """The columns of a table's COPY (web_alert.id is left to its sequence)."""
    if table == "audit_event":
        return ["entry", *template.columns[table]]
    if table == "audit_chain":
        return list(CHAIN_COLUMNS)
    return list(template.columns[table])


class Generator:
    """Fills the templates, referral after referral, a batch at a time: one string per table and batch.

    A batch is made in three parts so that several processes can make batches at once (`Batches`): its kinds are
    drawn in order from the one seeded generator (`kinds`: they fix how many audit records the batch holds, so its
    first chain position is known before it is made); its rows are filled anywhere (`fill`, from a generator seeded
    by the batch's first referral: the same store for the same seed, whatever the number of processes); its audit
    records are hashed into the chain in order (`chain`: the only serial part, one SHA-256 a record)."""

    def __init__(self, templates: dict[str, CopyTemplate], world: World, plan: Plan, seed: int = 7) -> None:
        self.templates = templates
        self.world = world
        self.plan = plan
        self.seed = seed
        self.rng = random.Random(seed)
        self.entry = 0  # audit_event.entry and audit_chain.seq: of the last record chained
        self.head = "0" * 64
        self.drawn = 0  # audit records of the batches whose kinds were drawn
        from exchange.audit.chain import GENESIS, link

        if link(GENESIS, 7, b"{}") != hashlib.sha256(f"{GENESIS}\n7\n".encode() + b"{}").hexdigest():
            raise SystemExit("exchange.audit.chain.link hashes otherwise than Generator.chain does")
        for party in [*world.hotlines, *world.shelters]:
            for value in (party.organization_id, party.client_id, party.service_id or ""):
                if _needs_escape(value) or "{" in value:
                    raise SystemExit(f"a directory id COPY would have to escape: {value!r}")

    def kinds(self, first: int, last: int) -> tuple[list[str], int]:
        """The kinds of referrals first..last-1 (in order: call once per batch, batches in order) and the chain
        position of the batch's first audit record."""
        kinds = [self.plan.kind_of(number, self.rng) for number in range(first, last)]
        first_entry = self.drawn + 1
        self.drawn += sum(len(self.templates[k].audit) for k in kinds)
        return kinds, first_entry

    def fill(self, first: int, kinds: list[str], first_entry: int) -> tuple[dict[str, bytes], list[str], list[bytes]]:
        """Referrals first..first+len(kinds)-1 as COPY text: per table its bytes, and the audit records' chain
        positions as the pieces of their COPY text with each record's hash left out (`pieces[1::2]`, as many as
        records) and, per record, what its hash is taken over after the previous record's hash (`link`)."""
        out: dict[str, list[str]] = {t: [] for t in CAPTURED}
        pieces: list[str] = [""]
        links: list[bytes] = []
        hotlines, shelters = self.world.hotlines, self.world.shelters
        rng = random.Random(f"{self.seed}:{first}")
        plan, urandom = self.plan, os.urandom
        entry = first_entry - 1
        for number, kind in enumerate(kinds, first):
            template = self.templates[kind]
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
            for content_template, event_line, before_hash, after_hash in template.audit:
                entry += 1
                content = content_template(values)
                links.append(f"\n{entry}\n{content}".encode())  # audit.chain.link: previous hash, this
                values["entry"] = str(entry)
                values["content"] = _escape(content) if _needs_escape(content) else content
                out["audit_event"].append(event_line(values))
                pieces[-1] += before_hash(values)
                pieces.append("")  # (the hash)
                pieces.append(after_hash(values))
        return {t: "".join(chunks).encode() for t, chunks in out.items()}, pieces, links

    def chain(self, first_entry: int, pieces: list[str], links: list[bytes]) -> bytes:
        """The chain positions of a filled batch's audit records as audit_chain's COPY text (batches in order)."""
        if first_entry != self.entry + 1:
            raise SystemExit(f"audit batches chained out of order: {first_entry} after {self.entry}")
        sha256, head, hashes = hashlib.sha256, self.head, []
        for link in links:
            head = sha256(head.encode() + link).hexdigest()
            hashes.append(head)
        pieces[1::2] = hashes
        self.entry, self.head = self.entry + len(links), head
        return "".join(pieces).encode()

    def batch(self, first: int, last: int) -> dict[str, bytes]:
        """Referrals first..last-1 made here, in order: per table its COPY text."""
        kinds, first_entry = self.kinds(first, last)
        tables, pieces, links = self.fill(first, kinds, first_entry)
        tables["audit_chain"] = self.chain(first_entry, pieces, links)
        return tables


_FILLING: Generator | None = None  # the generator a forked worker process fills batches with (`Batches`)


def _fill_in_worker(first: int, kinds: list[str], first_entry: int):  # noqa: ANN202
    assert _FILLING is not None
    return _FILLING.fill(first, kinds, first_entry)


class Batches:
    """The batches of referrals 0..referrals-1 in order, filled by `workers` processes (forked: they share the
    templates as made, no pickling of them) a few batches ahead, each chained here as it is taken. With 0 workers
    every batch is made in this process."""

    def __init__(self, gen: Generator, referrals: int, batch: int, workers: int) -> None:
        import multiprocessing

        global _FILLING
        self.gen, self.firsts = gen, list(range(0, referrals, batch))
        self.bounds = [(f, min(f + batch, referrals)) for f in self.firsts]
        self.pool = None
        self.submitted: list = []
        self.ahead = 2 * workers
        if workers > 0:
            _FILLING = gen
            self.pool = multiprocessing.get_context("fork").Pool(workers)
        self.chain_cpu = 0.0  # this process's CPU for the chain (and, without workers, all the making)

    def _submit(self, upto: int) -> None:
        while len(self.submitted) < min(upto, len(self.bounds)):
            first, last = self.bounds[len(self.submitted)]
            kinds, first_entry = self.gen.kinds(first, last)
            job = self.pool.apply_async(_fill_in_worker, (first, kinds, first_entry)) if self.pool else None
            self.submitted.append((first, kinds, first_entry, job))

    def take(self, i: int) -> dict[str, bytes]:
        """Batch i (taken in order, from one thread at a time): per table its COPY text."""
        self._submit(i + 1 + self.ahead)
        first, kinds, first_entry, job = self.submitted[i]
        self.submitted[i] = None  # (its memory freed as soon as it is loaded)
        filled = job.get() if job is not None else None
        began = time.thread_time()
        if filled is None:
            filled = self.gen.fill(first, kinds, first_entry)
        tables, pieces, links = filled
        tables["audit_chain"] = self.gen.chain(first_entry, pieces, links)
        self.chain_cpu += time.thread_time() - began
        return tables

    def close(self) -> float:
        """Stop the workers; their CPU seconds."""
        import resource as rusage

        if self.pool is None:
            return 0.0
        before = rusage.getrusage(rusage.RUSAGE_CHILDREN)
        self.pool.close()
        self.pool.join()
        after = rusage.getrusage(rusage.RUSAGE_CHILDREN)
        return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def _fill_sent(template: Template) -> None:
    """A deployment with a mail relay has sent the alerts of past referrals: `sent` = when they were made."""
    cols = template.columns["web_alert"]
    if not cols:
        return
    created, sent = cols.index("created"), cols.index("sent")
    for cells in template.tables["web_alert"]:
        cells[sent] = cells[created]


# --- loading ---------------------------------------------------------------------------------------------------------

@dataclass
class Rebuild:
    """One index to build again after the load: its table, its definition, and, for a primary key or unique
    constraint, the constraint that is then put on it (`ALTER TABLE ... ADD CONSTRAINT ... USING INDEX`, instant)."""
    table: str
    create: str
    constraint: str | None = None

    def attach(self) -> str:
        name, kind = self.constraint.split(" ", 1)  # type: ignore[union-attr]
        return f'ALTER TABLE "{self.table}" ADD CONSTRAINT "{name}" {kind} USING INDEX "{name}"'


async def _drop_keys_and_indexes(conn, tables: tuple[str, ...]) -> list[Rebuild]:  # noqa: ANN001
    """Drop the primary keys, unique constraints and indexes of `tables`; return how to build them again (the
    exchange's own definitions, read from the catalogue). A key is built as its unique index and then attached,
    so that it takes no lock that would stop the table's other indexes being built at the same time."""
    constraints = await conn.fetch(
        "SELECT c.conname, c.conrelid::regclass::text AS tbl, c.contype::text AS contype, pg_get_indexdef(c.conindid) AS def "
        "FROM pg_constraint c WHERE c.conrelid::regclass::text = ANY($1::text[]) AND c.contype IN ('p', 'u')",
        list(tables))
    indexes = await conn.fetch(
        "SELECT i.indexrelid::regclass::text AS name, i.indrelid::regclass::text AS tbl, "
        "pg_get_indexdef(i.indexrelid) AS def FROM pg_index i "
        "WHERE i.indrelid::regclass::text = ANY($1::text[]) AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)", list(tables))
    for row in indexes:
        await conn.execute(f'DROP INDEX "{row["name"]}"')
    for row in constraints:
        await conn.execute(f'ALTER TABLE "{row["tbl"]}" DROP CONSTRAINT "{row["conname"]}"')
    kinds = {"p": "PRIMARY KEY", "u": "UNIQUE"}
    return ([Rebuild(r["tbl"], r["def"], f'{r["conname"]} {kinds[r["contype"]]}') for r in constraints]
            + [Rebuild(r["tbl"], r["def"]) for r in indexes])


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds a PostgreSQL backend of this machine has used (None when its /proc entry cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        self.rows = 0

    async def _chunks(self):  # noqa: ANN202
        while (chunk := await self.queue.get()) is not None:
            self.bytes += len(chunk)
            self.rows += chunk.count(b"\n")  # (a row a line: COPY text escapes the newlines inside values)
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
    if args.toast_compression != "pglz":  # the store's own setting: the exchange's writes into it use it too
        admin = await asyncpg.connect(_dsn(args.database_url))
        try:
            name = await admin.fetchval("SELECT current_database()")
            await admin.execute(f'ALTER DATABASE "{name}" SET default_toast_compression = {args.toast_compression}')
        finally:
            await admin.close()
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
    columns = {t: copy_columns(next(iter(templates.values())), t) for t in LOADED}

    dsn = _dsn(args.database_url)
    batches = Batches(gen, args.referrals, max(1, args.batch), args.workers)  # (forked before any connection)
    conn = await asyncpg.connect(dsn)
    streams: list[Stream] = []
    cpu: dict[str, float] = {}
    try:
        head = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1")
        gen.entry, gen.head = int(head["seq"]), head["hash"]
        gen.drawn = gen.entry
        if await conn.fetchval("SELECT count(*) FROM audit_queue"):
            raise SystemExit("the directory's audit records are not all linked")
        if int(await conn.fetchval("SELECT coalesce(max(entry), 0) FROM audit_event")) != gen.entry or int(
                await conn.fetchval("SELECT coalesce(max(entry), 0) FROM audit_chain")) != gen.entry:
            raise SystemExit("audit entries and chain positions differ in the directory's log")
        renumbered = {"web_alert": {"id"}}
        for table in LOADED:  # every column the exchange's table has is filled, or numbered by its sequence
            missing = set(await _columns(conn, table)) - set(columns[table]) - renumbered.get(table, set())
            if missing:
                raise SystemExit(f"{table}: columns {sorted(missing)} were not captured")
        started = time.perf_counter()
        rebuilds = await _drop_keys_and_indexes(conn, LOADED)
        timings["drop keys and indexes"] = time.perf_counter() - started

        started = time.perf_counter()
        for table in LOADED:  # one session a table, each its own transaction (COPY ... FREEZE after TRUNCATE)
            each = await asyncpg.connect(dsn)
            await each.execute("SET synchronous_commit = off")  # (this session's commit only; fsync stays on)
            streams.append(Stream(each, table, columns[table]))
        pids = {s.table: await s.conn.fetchval("SELECT pg_backend_pid()") for s in streams}
        cpu_before = {t: _backend_cpu(pid) for t, pid in pids.items()}
        for stream in streams:
            await stream.start()
        by_table = {s.table: s for s in streams}
        loop = asyncio.get_running_loop()
        with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      disable=args.quiet) as progress:
            bar = progress.add_task("referrals", total=args.referrals)
            count = len(batches.bounds)
            # batches taken in order (the chain), one ahead of the COPYs; the workers fill further ahead
            ahead = loop.run_in_executor(None, batches.take, 0) if count else None
            for i in range(count):
                out = await ahead
                ahead = loop.run_in_executor(None, batches.take, i + 1) if i + 1 < count else None
                for table, chunk in out.items():
                    if chunk:
                        await by_table[table].put(chunk)
                del out
                progress.update(bar, completed=batches.bounds[i][1])
            for stream in streams:
                await stream.put(None)
            await asyncio.gather(*(s.task for s in streams))
        timings["generate and COPY"] = time.perf_counter() - started
        cpu["making rows: worker processes"] = batches.close()
        cpu["making rows: chain (this process)"] = batches.chain_cpu
        report["copy_bytes"] = sum(s.bytes for s in streams)
        copy_cpu = {t: _backend_cpu(pid) for t, pid in pids.items()}
        if all(v is not None for v in [*cpu_before.values(), *copy_cpu.values()]):
            cpu["COPY: PostgreSQL sessions"] = sum(copy_cpu[t] - cpu_before[t] for t in pids)  # type: ignore
            report["copy_cpu_s"] = {t: round(copy_cpu[t] - cpu_before[t], 1) for t in pids}  # type: ignore

        # The indexes, keys and statistics, as jobs for `--connections` sessions at once, the table of the most
        # rows first (a build's time goes with the rows it sorts: the longest start first, so the sessions finish
        # together); the keys attached at the end.
        started = time.perf_counter()
        sizes = {s.table: s.rows for s in streams}
        tables = [r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        jobs: list[Rebuild | str] = [*sorted(rebuilds, key=lambda r: (-sizes.get(r.table, 0), -len(r.create))),
                                     *(f'ANALYZE "{t}"' for t in sorted(tables, key=lambda t: -sizes.get(t, 0)))]
        built: dict[str, float] = {}
        sessions = [s.conn for s in streams[:max(1, args.connections)]]
        for _ in range(max(1, args.connections) - len(sessions)):
            sessions.append(await asyncpg.connect(dsn))
        index_pids = [await c.fetchval("SELECT pg_backend_pid()") for c in sessions]
        index_before = [_backend_cpu(pid) for pid in index_pids]

        async def rebuild(each) -> None:  # noqa: ANN001
            # this session's own settings for the build: a sort in memory as far as it goes, and (with
            # --maintenance-workers) its parallel workers: 0, the sessions alone build at once and the CPU counted
            # is all of it; PostgreSQL's own (2) takes more of a machine that others share
            await each.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
            if args.maintenance_workers is not None:
                await each.execute(f"SET max_parallel_maintenance_workers = {int(args.maintenance_workers)}")
            while jobs:
                job = jobs.pop(0)
                began = time.perf_counter()
                await each.execute(job if isinstance(job, str) else job.create)
                if not isinstance(job, str):
                    built[job.create.split(" ON ")[0].split()[-1]] = round(time.perf_counter() - began, 1)

        await asyncio.gather(*(rebuild(c) for c in sessions))
        for job in rebuilds:
            if job.constraint:
                await conn.execute(job.attach())
        timings["rebuild keys and indexes, ANALYZE"] = time.perf_counter() - started
        report["index_build_s"] = dict(sorted(built.items(), key=lambda kv: -kv[1]))
        index_after = [_backend_cpu(pid) for pid in index_pids]
        if all(v is not None for v in [*index_before, *index_after]):
            cpu["indexes and ANALYZE: PostgreSQL sessions" + (
                "" if args.maintenance_workers == 0 else " (their parallel workers not counted)")] = sum(
                a - b for a, b in zip(index_after, index_before))  # type: ignore[operator]
        for extra in sessions[len(streams):]:
            await extra.close()

        await conn.execute("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", gen.entry, gen.head)
        await conn.execute("SELECT setval(pg_get_serial_sequence('audit_event', 'entry'), $1)", max(gen.entry, 1))
        report["rows"] = int(await conn.fetchval(
            "SELECT sum(reltuples)::bigint FROM pg_class WHERE relkind = 'r' AND relname = ANY($1::text[])",
            list(LOADED)))
        report["database_bytes"] = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        report["table_bytes"] = {r["t"]: int(r["b"]) for r in await conn.fetch(
            "SELECT relname AS t, pg_total_relation_size(oid) AS b FROM pg_class WHERE relkind = 'r' AND "
            "relname = ANY($1::text[])", list(LOADED))}
    finally:
        for stream in streams:
            if stream.task is not None and not stream.task.done():
                stream.task.cancel()
            await stream.conn.close()
        await conn.close()
        if batches.pool is not None:
            batches.pool.terminate()
    exchange = build(settings)
    try:
        checkpoint = await sign_checkpoint(exchange)
        report["checkpoint_tree_size"] = checkpoint.tree_size
    finally:
        await exchange.db.dispose()
    report["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    report["cpu_s"] = {k: round(v, 1) for k, v in cpu.items()}
    report["audit_records"] = gen.entry
    load_s = timings["generate and COPY"] + timings["rebuild keys and indexes, ANALYZE"]
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
    parser.add_argument("--connections", type=int, default=3, help="sessions building the keys and indexes at once")
    parser.add_argument("--maintenance-workers", type=int, default=None,
                        help="max_parallel_maintenance_workers of each building session (default: the server's)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="processes filling the batches (0: this process alone)")
    parser.add_argument("--toast-compression", default="lz4", choices=("lz4", "pglz"),
                        help="the store's default_toast_compression (ALTER DATABASE; pglz is PostgreSQL's default)")
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
