"""$status (type and instance), $events (replay by event number) and the topic list.

A subscriber sees only its own subscriptions (the same need-to-know filter as every read: others get 404), and
$events returns only events whose focus its organisation is still party to.
"""
from __future__ import annotations

import uuid

from sqlalchemy import select

from exchange.auth.access import check_permission
from exchange.context import RequestContext
from exchange.errors import BadRequest, NotFound
from exchange.fhir.search import int_param
from exchange.need_to_know.parties import is_party
from exchange.notify import bundle as notification, queue
from exchange.notify.spec import BACKPORT, SubscriptionSpec
from exchange.notify.tables import subscription_state as state
from exchange.notify.topics import TOPICS
from exchange.kernel.exchange import Exchange
from exchange.store.repository import Repository
from exchange.kernel.unit import Event, Unit, open_unit


def _searchset(entries: list[dict]) -> dict:
    bundle: dict = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset", "total": len(entries)}
    if entries:
        bundle["entry"] = [{"fullUrl": f"urn:uuid:{p['id']}", "resource": p, "search": {"mode": "match"}}
                           for p in entries]
    return bundle


async def _visible_state(unit: Unit, subscription_id: str):  # noqa: ANN202
    check_permission(unit.ctx, "Subscription", "r")
    stored = await unit.repo.read("Subscription", subscription_id, unit.access)
    row = await queue.get_state(unit.conn, subscription_id) if stored is not None and not stored.deleted else None
    if row is None:
        raise NotFound(f"Subscription/{subscription_id} is not known", expression="Subscription.id")
    return row


def _status_of(exchange: Exchange, row) -> dict:  # noqa: ANN001
    return notification.status_parameters(exchange.settings.fhir_base_url, row.subscription_id, row.topic,
                                          row.status, "query-status", int(row.events_counter),
                                          error=row.last_error if row.status == "error" else None)


async def status_instance(exchange: Exchange, ctx: RequestContext, subscription_id: str) -> dict:
    async with open_unit(exchange, ctx, "operation", "Subscription", subscription_id, read_only=True) as unit:
        row = await _visible_state(unit, subscription_id)
        unit.record(Event("operation", "E", "Subscription", subscription_id))
        return _searchset([_status_of(exchange, row)])


async def status_type(exchange: Exchange, ctx: RequestContext, params: list[tuple[str, str]]) -> dict:
    ids = [v for k, value in params if k == "id" for v in value.split(",") if v]
    statuses = [v for k, value in params if k == "status" for v in value.split(",") if v]
    unknown = [k for k, _ in params if k not in ("id", "status", "_format", "_pretty")]
    if unknown:
        raise BadRequest("$status takes only id and status", code="not-supported")
    async with open_unit(exchange, ctx, "operation", "Subscription", read_only=True) as unit:
        check_permission(ctx, "Subscription", "r")
        query = select(state).order_by(state.c.created).limit(exchange.settings.max_page_size)
        if not ctx.is_system:
            query = query.where(state.c.organization_id == (ctx.organization_id or ""))
        if ids:
            query = query.where(state.c.subscription_id.in_(ids))
        if statuses:
            query = query.where(state.c.status.in_(statuses))
        rows = (await unit.conn.execute(query)).all()
        unit.record(Event("operation", "E", "Subscription"))
        return _searchset([_status_of(exchange, r) for r in rows])


def _number(params: list[tuple[str, str]], name: str) -> int | None:
    values = [v for k, v in params if k == name]
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{name} must be given once", expression=name)
    return int_param(name, values[0], 1)


async def events(exchange: Exchange, ctx: RequestContext, subscription_id: str, params: list[tuple[str, str]]
                 ) -> dict:
    """The events numbered eventsSinceNumber..eventsUntilNumber (inclusive; at most `notify_events_max`)."""
    since = _number(params, "eventsSinceNumber") or 1
    until = _number(params, "eventsUntilNumber")
    contents = [v for k, v in params if k == "content"]
    if contents and contents[0] not in ("empty", "id-only", "full-resource"):
        raise BadRequest("content must be empty, id-only or full-resource", expression="content")
    async with open_unit(exchange, ctx, "operation", "Subscription", subscription_id, read_only=True) as unit:
        row = await _visible_state(unit, subscription_id)
        spec = SubscriptionSpec.loads(row.spec)
        content = contents[0] if contents else spec.payload
        if content == "full-resource" and not exchange.settings.notify_allow_full_resource:
            content = "id-only"  # a hint the server may ignore (backport IG); survivor data stays out
        last = int(row.events_counter) if until is None else min(until, int(row.events_counter))
        rows = await queue.events_between(unit.conn, subscription_id, since, last, exchange.settings.notify_events_max)
        repo = Repository(unit.conn)
        visible = []
        for item in rows:
            if item.state in ("withheld", "cancelled"):
                continue
            if await is_party(repo, row.organization_id, item.focus_type, item.focus_id):
                visible.append(item)
        found = await queue.load_events(repo, visible, content)
        unit.record(Event("operation", "E", "Subscription", subscription_id))
        base = exchange.settings.fhir_base_url
        parameters = notification.status_parameters(base, subscription_id, row.topic, row.status, "query-event",
                                                    int(row.events_counter), found, content)
        return notification.notification_bundle(base, parameters, found, content)


def topics() -> dict:
    """The supported topics as an R4 Parameters resource (R4 has no SubscriptionTopic resource)."""
    parameter = []
    for topic in TOPICS.values():
        parts = [{"name": "canonical", "valueCanonical": topic.canonical},
                 {"name": "title", "valueString": topic.title},
                 {"name": "description", "valueString": topic.description},
                 {"name": "resource", "valueCode": topic.resource_type}]
        parts += [{"name": "trigger", "valueCode": t} for t in topic.triggers]
        for f in topic.filters.values():
            parts.append({"name": "filter", "part": [
                {"name": "parameter", "valueString": f.name},
                {"name": "documentation", "valueString": f.documentation or f.name}]})
        parameter.append({"name": "topic", "part": parts})
    return {"resourceType": "Parameters", "parameter": parameter}


def contribute_capability(statement: dict, exchange: Exchange) -> None:
    """Advertise the topics and operations on the Subscription entry of the CapabilityStatement."""
    statement.setdefault("implementationGuide", []).append(
        f"{BACKPORT}/ImplementationGuide/hl7.fhir.uv.subscriptions-backport")
    for rest in statement.get("rest", []):
        for entry in rest.get("resource", []):
            if entry.get("type") != "Subscription":
                continue
            entry["supportedProfile"] = [f"{BACKPORT}/StructureDefinition/backport-subscription"]
            entry.setdefault("extension", []).extend(
                {"url": f"{BACKPORT}/StructureDefinition/capabilitystatement-subscriptiontopic-canonical",
                 "valueCanonical": canonical} for canonical in TOPICS)
            entry["operation"] = [
                {"name": "status", "definition": f"{BACKPORT}/OperationDefinition/backport-subscription-status"},
                {"name": "events", "definition": f"{BACKPORT}/OperationDefinition/backport-subscription-events"},
                {"name": "topics",
                 "definition": "https://gbv-exchange.org/fhir/OperationDefinition/subscription-topics",
                 "documentation": "The topics this server supports (a Parameters resource)"},
            ]


__all__ = ["status_instance", "status_type", "events", "topics", "contribute_capability"]
