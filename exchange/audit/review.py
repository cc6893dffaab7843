"""Reviewing the log: who may, the AuditEvent search (date, agent, entity, action, outcome, subtype), rendering.

Auditors (and the exchange itself) see every record. A partner sees only records about resources its organisation
is party to (the same `resource_party` rows that decide who sees a referral) made by itself, the exchange, or an
organisation party with it to that resource's referral (the rule is need to know's,
`exchange.need_to_know.visibility.sees_event_about`; this module puts it over the log's tables); in those only the entities it may see, without other
organisations' network addresses or search queries. Administrators run the exchange but do
not review disclosures: they get 403 (separation of duties; the coordinating body's auditors review).

A search answers in time order (`recorded`, the `date` parameter; ties in log order), oldest first or with
`_sort=-date` newest first: so a page of a period, an agent or both is a range of one index read in its order
(`exchange.audit.tables`), as cheap for last year's week as for today's.
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import and_, bindparam, exists, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.audit.builder import CLIENT_SYSTEM, OBJECT_ROLE
from exchange.audit.chain import with_chain
from exchange.audit.tables import audit_chain, audit_entity, audit_event, rare_kind_literal
from exchange.auth.access import check_permission
from exchange.context import RequestContext
from exchange.errors import BadRequest, Forbidden
from exchange.fhir.references import split_reference
from exchange.fhir.search import SearchPlan, checked_values, date_value, int_param, total_param
from exchange.fhir.search_sql import instant_between
from exchange.need_to_know.visibility import sees_event_about
from exchange.settings import Settings
from exchange.store import direct
from exchange.store.clock import from_db, to_db
from exchange.store.values import StoredResource

SEARCH_PARAMS = {
    "date": ("date", "When the event was recorded (prefixes eq ne gt ge lt le sa eb ap)"),
    "agent": ("reference", "Who acted: Organization/[id] or a client id"),
    "entity": ("reference", "A resource the event is about: [type]/[id]"),
    "action": ("token", "C | R | U | D | E"),
    "outcome": ("token", "0 (success) | 4 | 8 | 12"),
    "subtype": ("token", "The interaction: read, vread, create, update, delete, search-type, transaction, ..."),
    "_id": ("token", "The AuditEvent's id"),
}
_IGNORED = {"_format", "_pretty"}
_ACTIONS = {"C", "R", "U", "D", "E"}
_OUTCOMES = {"0", "4", "8", "12"}


@dataclass(frozen=True)
class Viewer:
    """Whose view of the log: None = the whole log, else the organisation a partner acts for."""
    organization_id: str | None


def viewer_of(ctx: RequestContext, operation: str) -> Viewer:
    """Who may review: auditors and the exchange all of it, partners their referrals', admins nothing (403)."""
    if ctx.is_system:
        return Viewer(None)
    if ctx.role == "admin":
        raise Forbidden("Administrators do not review the exchange log; an auditor client does")
    if ctx.role not in ("auditor", "partner"):
        raise Forbidden("This client's role may not review the exchange log")
    check_permission(ctx, "AuditEvent", operation)
    if ctx.role == "auditor":
        return Viewer(None)
    if not ctx.organization_id:
        raise Forbidden("A partner client must act for an organisation to review the exchange log")
    return Viewer(ctx.organization_id)


def _about(organization_id: str, type_column, id_column):  # noqa: ANN001, ANN202
    """The event (its actor) about this resource is one the organisation may see (`sees_event_about`)."""
    return sees_event_about(organization_id, audit_event.c.organization_id, type_column, id_column)


def _party_clause(organization_id: str):  # noqa: ANN202
    """The event is about (its first or a further entity) a resource of a referral the organisation is party to."""
    first = _about(organization_id, audit_event.c.entity_type, audit_event.c.entity_id)
    further = exists().where(and_(audit_entity.c.event_id == audit_event.c.id,
                                  _about(organization_id, audit_entity.c.resource_type,
                                         audit_entity.c.resource_id))).correlate_except(audit_entity)
    return or_(first, further)


def visibility(viewer: Viewer) -> list:
    return [] if viewer.organization_id is None else [_party_clause(viewer.organization_id)]


_FIRST_ENTITY = audit_event.alias("first_entity")
# A record as it is served: its row and its chain position (none while it is queued for the linker)
_RECORD = (audit_event, audit_chain.c.seq, audit_chain.c.hash)
_WITH_CHAIN = audit_event.outerjoin(audit_chain, audit_chain.c.entry == audit_event.c.entry)


def _reference(raw: str) -> tuple[str, str]:
    target = split_reference(raw)
    if target is None:
        raise BadRequest("entity takes references of the form Type/id", expression="entity")
    return target


def _criterion(name: str, values: list[str], prefix: str) -> tuple[tuple, dict]:
    """One parameter's part of the query's shape, and its values by bind parameter name (`prefix` + position):
    values are checked here, so a bad one is refused before anything is built."""
    if name == "date":
        dates = [date_value("date", v) for v in values]
        params = {}
        for j, d in enumerate(dates):
            params[f"{prefix}{j}s"], params[f"{prefix}{j}e"] = to_db(d.start), to_db(d.end)
        return (name, tuple(d.prefix for d in dates)), params
    if name == "agent":
        kinds = tuple("org" if v.startswith("Organization/") else "client" for v in values)
        return (name, kinds), {f"{prefix}{j}": v.removeprefix("Organization/") if kind == "org" else v.split("|")[-1]
                               for j, (v, kind) in enumerate(zip(values, kinds))}
    if name == "entity":
        params = {}
        for j, (t, i) in enumerate(_reference(v) for v in values):
            params[f"{prefix}{j}t"], params[f"{prefix}{j}i"] = t, i
        return (name, len(values)), params
    if name in ("action", "outcome"):
        allowed = _ACTIONS if name == "action" else _OUTCOMES
        if any(v not in allowed for v in values):
            raise BadRequest(f"{name} must be one of {', '.join(sorted(allowed))}", expression=name)
    if name == "subtype":
        values = [v.split("|")[-1] for v in values]
    if name in ("outcome", "subtype"):  # a rare kind's values are in the SQL itself (`rare_kind_literal`)
        literal = tuple(v if rare_kind_literal(name, v) is not None else None for v in values)
        return (name, literal), {f"{prefix}{j}": v for j, v in enumerate(values) if literal[j] is None}
    return (name, len(values)), {f"{prefix}{j}": v for j, v in enumerate(values)}  # action, _id


def _condition(shape: tuple, prefix: str):  # noqa: ANN202
    """The SQL of one parameter of `shape` (`_criterion`), its values as bind parameters."""
    name, form = shape
    if name == "date":
        return or_(*[instant_between(audit_event.c.recorded, p, bindparam(f"{prefix}{j}s"), bindparam(f"{prefix}{j}e"))
                     for j, p in enumerate(form)])
    if name == "agent":
        return or_(*[(audit_event.c.organization_id if kind == "org" else audit_event.c.client_id)
                     == bindparam(f"{prefix}{j}") for j, kind in enumerate(form)])
    if name == "entity":
        # The events whose first entity (audit_event) or a further one (audit_entity) is one of the references, as
        # one id list: each half is an index lookup, so the cost follows the matches, not the size of the log (an
        # OR of the two would scan the whole log).
        first = _FIRST_ENTITY
        return audit_event.c.id.in_(union_all(
            select(first.c.id).where(or_(*[and_(first.c.entity_type == bindparam(f"{prefix}{j}t"),
                                                first.c.entity_id == bindparam(f"{prefix}{j}i")) for j in range(form)])),
            select(audit_entity.c.event_id).where(or_(*[
                and_(audit_entity.c.resource_type == bindparam(f"{prefix}{j}t"),
                     audit_entity.c.resource_id == bindparam(f"{prefix}{j}i")) for j in range(form)]))))
    column = audit_event.c.id if name == "_id" else audit_event.c[name]
    if name in ("outcome", "subtype"):
        return column.in_([bindparam(f"{prefix}{j}") if v is None else rare_kind_literal(name, v)
                           for j, v in enumerate(form)])
    return column.in_([bindparam(f"{prefix}{j}") for j in range(form)])


@dataclass
class AuditQuery:
    shape: tuple  # the parameters' shapes (`_criterion`) and the order: the SQL depends on nothing else
    params: dict  # the values, by bind parameter name
    plan: SearchPlan  # for paging links: echo, count, offset
    descending: bool

    def conditions(self, viewer: Viewer) -> list:
        return [_condition(shape, f"c{k}_") for k, shape in enumerate(self.shape)] + visibility(viewer)


def parse_query(params: list[tuple[str, str]], settings: Settings) -> AuditQuery:
    """Unknown parameters are refused (400): a mistyped filter must not silently widen an auditor's result."""
    plan = SearchPlan("AuditEvent", count=settings.default_page_size)
    shapes, values, descending = [], {}, False
    for key, raw in params:
        if key in _IGNORED:
            continue
        if key == "_count":
            plan.count = min(int_param("_count", raw, 0), settings.max_page_size)
        elif key == "_offset":
            plan.offset = int_param("_offset", raw, 0, settings.search_max_offset)
        elif key == "_total":
            total_param(plan, raw)
        elif key == "_sort":
            if raw not in ("date", "-date"):
                raise BadRequest("AuditEvent can be sorted by date or -date", expression="_sort")
            descending = raw == "-date"
            plan.echo.append((key, raw))
        elif key in SEARCH_PARAMS:
            found = [v for v in checked_values(key, raw, settings.search_limits) if v]
            if not found:
                raise BadRequest(f"Search parameter '{key}' needs a value", expression=key)
            shape, bound = _criterion(key, found, f"c{len(shapes)}_")
            shapes.append(shape)
            values.update(bound)
            plan.echo.append((key, raw))
        else:
            raise BadRequest(f"AuditEvent search supports {', '.join(SEARCH_PARAMS)}, _count, _offset, _sort and "
                             "_total (the unknown parameter's name is not repeated)", code="not-supported")
    return AuditQuery(tuple(shapes), values, plan, descending)


_VIEWER, _LIMIT, _OFFSET = "viewer", "page_limit", "page_offset"  # (bind parameter names)
# (shape, descending, partner's view, dialect) -> (page, count) statements, compiled once (`run_query`). Shapes are
# what parameters, how many values each: few in practice; past _MOST_SHAPES a new one is built each time instead.
_STATEMENTS: dict[tuple, tuple[direct.Statement, direct.Statement]] = {}
_MOST_SHAPES = 256


def _statements(query: AuditQuery, viewer: Viewer, dialect: str) -> tuple[direct.Statement, direct.Statement]:
    key = (query.shape, query.descending, viewer.organization_id is not None, dialect)
    found = _STATEMENTS.get(key)
    if found is None:
        bound = Viewer(None if viewer.organization_id is None else bindparam(_VIEWER))  # type: ignore[arg-type]
        where = query.conditions(bound)
        order = [audit_event.c.recorded.desc(), audit_event.c.entry.desc()] if query.descending \
            else [audit_event.c.recorded, audit_event.c.entry]
        found = (direct.Statement(select(*_RECORD).select_from(_WITH_CHAIN).where(*where).order_by(*order)
                                  .limit(bindparam(_LIMIT)).offset(bindparam(_OFFSET))),
                 direct.Statement(select(func.count().label("total")).select_from(audit_event).where(*where)))
        if len(_STATEMENTS) < _MOST_SHAPES:
            _STATEMENTS[key] = found
    return found


async def run_query(conn: AsyncConnection, query: AuditQuery, viewer: Viewer) -> tuple[list, int | None]:
    """The page and the total. The total is counted only when the page cannot tell it (as a resource search's:
    `exchange.store.reads.Reads.search`): a page of fewer rows than asked holds the last match; with `_total=none`
    it is not counted (None), which spares a search of a long period reading every match's index entry."""
    page, counted = _statements(query, viewer, conn.dialect.name)
    params = dict(query.params)
    if viewer.organization_id is not None:
        params[_VIEWER] = viewer.organization_id
    count, offset = query.plan.count, query.plan.offset
    rows = []
    if count:
        rows = await direct.fetch(conn, page, {**params, _LIMIT: count, _OFFSET: offset})
    if 0 < len(rows) < count or (offset == 0 and len(rows) < count):
        return rows, offset + len(rows)
    if not query.plan.total:
        return rows, None
    return rows, int((await direct.fetch(conn, counted, params))[0]["total"] or 0)


async def read_row(conn: AsyncConnection, event_id: str, viewer: Viewer):  # noqa: ANN201
    return (await conn.execute(select(*_RECORD).select_from(_WITH_CHAIN)
                               .where(audit_event.c.id == event_id, *visibility(viewer)))).first()


async def _visible_entities(conn: AsyncConnection, event_ids: list[str], organization_id: str
                            ) -> dict[str, set[str]]:
    """For each event: the references among its entities that the organisation may see in it (`_party_clause`)."""
    first = select(audit_event.c.id.label("event_id"), audit_event.c.entity_type.label("resource_type"),
                   audit_event.c.entity_id.label("resource_id")).where(
        audit_event.c.id.in_(event_ids),
        _about(organization_id, audit_event.c.entity_type, audit_event.c.entity_id))
    further = select(audit_entity.c.event_id, audit_entity.c.resource_type, audit_entity.c.resource_id).select_from(
        audit_entity.join(audit_event, audit_event.c.id == audit_entity.c.event_id)).where(
        audit_entity.c.event_id.in_(event_ids),
        _about(organization_id, audit_entity.c.resource_type, audit_entity.c.resource_id))
    out: dict[str, set[str]] = {}
    for query in (first, further):
        for row in (await conn.execute(query)).all():
            out.setdefault(row.event_id, set()).add(f"{row.resource_type}/{row.resource_id}")
    return out


def _partner_view(resource: dict, visible: set[str], organization_id: str) -> dict:
    """Another organisation's record as a partner sees it: only the entities it may see, no foreign addresses."""
    own = f"Organization/{organization_id}"
    acting = (resource.get("agent") or [{}])[0].get("who", {}).get("reference") == own
    if not acting:
        for agent in resource.get("agent", []):
            agent.pop("network", None)
            agent.pop("policy", None)
    kept = []
    for entity in resource.get("entity", []):
        reference = (entity.get("what") or {}).get("reference")
        if reference is not None:
            if "/".join(reference.split("/")[:2]) in visible:
                kept.append(entity)
        elif acting or entity.get("role", {}).get("system") != OBJECT_ROLE or entity["role"].get("code") != "24":
            kept.append(entity)  # request id; a query only when it was the partner's own
    resource["entity"] = kept
    return resource


async def render(conn: AsyncConnection, rows: list, viewer: Viewer) -> list[StoredResource]:
    """The rows as AuditEvents (with their chain position), cut down to a partner's view where needed."""
    visible = await _visible_entities(conn, [getattr(r, "_mapping", r)["id"] for r in rows], viewer.organization_id) \
        if viewer.organization_id and rows else {}
    out = []
    for row in rows:
        m = getattr(row, "_mapping", row)  # (a Row, or a mapping of its columns: exchange.store.direct)
        resource = with_chain(m["content"], m["seq"], m["hash"])
        if viewer.organization_id:
            resource = _partner_view(resource, visible.get(m["id"], set()), viewer.organization_id)
        out.append(StoredResource("AuditEvent", m["id"], 1, from_db(m["recorded"]), False,
                                  orjson.dumps(resource).decode()))
    return out


async def search(exchange, ctx: RequestContext, params: list[tuple[str, str]]  # noqa: ANN001
                 ) -> tuple[list[StoredResource], int | None, AuditQuery]:
    """An audited review of the log as `ctx` sees it: the page of AuditEvents, the total, and the query used."""
    from exchange.kernel.unit import Event, open_unit

    viewer = viewer_of(ctx, "s")
    query = parse_query(params, exchange.settings)
    async with open_unit(exchange, ctx, "search-type", "AuditEvent", read_only=True) as unit:
        rows, total = await run_query(unit.conn, query, viewer)
        matches = await render(unit.conn, rows, viewer)
        unit.record(Event("search-type", "E", "AuditEvent", query=list(query.plan.echo)))
    return matches, total, query


__all__ = ["search", "CLIENT_SYSTEM", "Viewer", "viewer_of", "parse_query", "run_query", "read_row", "render"]
