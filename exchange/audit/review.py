"""Reviewing the log: who may, the AuditEvent search (date, agent, entity, action, outcome, subtype), rendering.

Auditors (and the exchange itself) see every record. A partner sees only records about resources its organisation
is party to (the same `resource_party` rows that decide who sees a referral) made by itself, the exchange, or an
organisation party with it to that resource's referral (the rule is need to know's,
`exchange.need_to_know.visibility.sees_event_about`; this module puts it over the log's tables); in those only the entities it may see, without other
organisations' network addresses or search queries. Administrators run the exchange but do
not review disclosures: they get 403 (separation of duties; the coordinating body's auditors review).
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import and_, exists, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.audit.builder import CLIENT_SYSTEM, OBJECT_ROLE
from exchange.audit.chain import with_chain
from exchange.audit.tables import audit_entity, audit_event
from exchange.auth.access import check_permission
from exchange.context import RequestContext
from exchange.errors import BadRequest, Forbidden
from exchange.fhir.references import split_reference
from exchange.fhir.search import SearchPlan, checked_values, date_value, int_param
from exchange.fhir.search_sql import instant_condition
from exchange.need_to_know.visibility import sees_event_about
from exchange.settings import Settings
from exchange.store.clock import from_db
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
_IGNORED = {"_format", "_pretty", "_total"}
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


def _reference(raw: str) -> tuple[str, str]:
    target = split_reference(raw)
    if target is None:
        raise BadRequest("entity takes references of the form Type/id", expression="entity")
    return target


def _condition(name: str, values: list[str]):  # noqa: ANN202
    if name == "date":
        return or_(*[instant_condition(audit_event.c.recorded, date_value("date", v)) for v in values])
    if name == "agent":
        return or_(*[audit_event.c.organization_id == v.removeprefix("Organization/") if v.startswith(
            "Organization/") else audit_event.c.client_id == v.split("|")[-1] for v in values])
    if name == "entity":
        # The events whose first entity (audit_event) or a further one (audit_entity) is one of `refs`, as one id
        # list: each half is an index lookup, so the cost follows the matches, not the size of the log (an OR of
        # the two would scan the whole log).
        refs = [_reference(v) for v in values]
        first = _FIRST_ENTITY
        return audit_event.c.id.in_(union_all(
            select(first.c.id).where(or_(*[and_(first.c.entity_type == t, first.c.entity_id == i) for t, i in refs])),
            select(audit_entity.c.event_id).where(or_(*[and_(audit_entity.c.resource_type == t,
                                                             audit_entity.c.resource_id == i) for t, i in refs]))))
    if name in ("action", "outcome"):
        allowed = _ACTIONS if name == "action" else _OUTCOMES
        bad = [v for v in values if v not in allowed]
        if bad:
            raise BadRequest(f"{name} must be one of {', '.join(sorted(allowed))}", expression=name)
        return audit_event.c[name].in_(values)
    if name == "subtype":
        return audit_event.c.subtype.in_([v.split("|")[-1] for v in values])
    return audit_event.c.id.in_(values)  # _id


@dataclass
class AuditQuery:
    conditions: list
    plan: SearchPlan  # for paging links: echo, count, offset
    descending: bool


def parse_query(params: list[tuple[str, str]], settings: Settings) -> AuditQuery:
    """Unknown parameters are refused (400): a mistyped filter must not silently widen an auditor's result."""
    plan = SearchPlan("AuditEvent", count=settings.default_page_size)
    conditions, descending = [], False
    for key, raw in params:
        if key in _IGNORED:
            continue
        if key == "_count":
            plan.count = min(int_param("_count", raw, 0), settings.max_page_size)
        elif key == "_offset":
            plan.offset = int_param("_offset", raw, 0, settings.search_max_offset)
        elif key == "_sort":
            if raw not in ("date", "-date"):
                raise BadRequest("AuditEvent can be sorted by date or -date", expression="_sort")
            descending = raw == "-date"
            plan.echo.append((key, raw))
        elif key in SEARCH_PARAMS:
            values = [v for v in checked_values(key, raw, settings.search_limits) if v]
            if not values:
                raise BadRequest(f"Search parameter '{key}' needs a value", expression=key)
            conditions.append(_condition(key, values))
            plan.echo.append((key, raw))
        else:
            raise BadRequest(f"AuditEvent search supports {', '.join(SEARCH_PARAMS)}, _count, _offset and _sort "
                             "(the unknown parameter's name is not repeated)", code="not-supported")
    return AuditQuery(conditions, plan, descending)


async def run_query(conn: AsyncConnection, query: AuditQuery, viewer: Viewer) -> tuple[list, int]:
    where = query.conditions + visibility(viewer)
    total = int((await conn.execute(select(func.count()).select_from(audit_event).where(*where))).scalar() or 0)
    order = audit_event.c.entry.desc() if query.descending else audit_event.c.entry
    rows = []
    if query.plan.count:
        rows = (await conn.execute(select(audit_event).where(*where).order_by(order).limit(query.plan.count)
                                   .offset(query.plan.offset))).all()
    return rows, total


async def read_row(conn: AsyncConnection, event_id: str, viewer: Viewer):  # noqa: ANN201
    return (await conn.execute(select(audit_event).where(audit_event.c.id == event_id, *visibility(viewer)))
            ).first()


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
    visible = await _visible_entities(conn, [r.id for r in rows], viewer.organization_id) \
        if viewer.organization_id and rows else {}
    out = []
    for row in rows:
        resource = with_chain(row.content, row.seq, row.hash)
        if viewer.organization_id:
            resource = _partner_view(resource, visible.get(row.id, set()), viewer.organization_id)
        out.append(StoredResource("AuditEvent", row.id, 1, from_db(row.recorded), False,
                                  orjson.dumps(resource).decode()))
    return out


async def search(exchange, ctx: RequestContext, params: list[tuple[str, str]]  # noqa: ANN001
                 ) -> tuple[list[StoredResource], int, AuditQuery]:
    """An audited review of the log as `ctx` sees it: the page of AuditEvents, the total, and the query used."""
    from exchange.kernel.unit import Event, open_unit

    viewer = viewer_of(ctx, "s")
    query = parse_query(params, exchange.settings)
    async with open_unit(exchange, ctx, "search-type", "AuditEvent") as unit:
        rows, total = await run_query(unit.conn, query, viewer)
        matches = await render(unit.conn, rows, viewer)
        unit.record(Event("search-type", "E", "AuditEvent", query=list(query.plan.echo)))
    return matches, total, query


__all__ = ["search", "CLIENT_SYSTEM", "Viewer", "viewer_of", "parse_query", "run_query", "read_row", "render"]
