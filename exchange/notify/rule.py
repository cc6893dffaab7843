"""The WriteRule for Subscription resources: validate the backport profile, check that the subscriber is entitled
to the events it asks for, and keep the dispatcher's state row (and the handshake) in step with the resource.

Status is the server's: a new Subscription is stored `requested` and the dispatcher moves it to `active` or `error`
after the handshake. A subscriber may set `requested` (re-activate, e.g. after an error) or `off`, nothing else.
"""
from __future__ import annotations

from exchange.auth.access import may
from exchange.egress import EgressRefused, egress
from exchange.errors import Forbidden, Unprocessable
from exchange.notify import queue
from exchange.notify.spec import SubscriptionSpec, parse_subscription
from exchange.fhir.references import split_reference
from exchange.store.repository import StoredResource, utcnow
from exchange.unit import Unit


async def check_entitled(unit: Unit, spec: SubscriptionSpec) -> None:
    """A partner subscribes only to referrals its organisation is party to: at least one party filter (owner,
    requester, performer) names only its own organisation, or an `_id` filter names requests it can already see."""
    ctx = unit.ctx
    topic = spec.topic_definition
    if ctx.is_system:
        return
    if ctx.role != "partner" or ctx.organization_id is None:
        raise Forbidden("Only partner organisations subscribe to referral events", code="forbidden")
    if not may(ctx, topic.resource_type, "r"):
        raise Forbidden(f"The access token cannot read {topic.resource_type}, so it cannot subscribe to its events "
                        f"(needs e.g. system/{topic.resource_type}.rs)", code="forbidden")
    own = ("Organization", ctx.organization_id)
    pinned = False
    for name, values in spec.filters.items():
        definition = topic.filters[name]
        if definition.party and all(split_reference(v) == own for v in values):
            pinned = True
        elif definition.kind == "id":
            visible = await unit.repo.read_many([(topic.resource_type, v) for v in values], unit.access)
            if len(visible) != len(set(values)):
                raise Unprocessable(f"_id names a {topic.resource_type} your organisation is not party to",
                                    expression="Subscription.criteria.extension")
            pinned = True
    if not pinned:
        party = " or ".join(f"{n}=Organization/{ctx.organization_id}" for n, f in topic.filters.items() if f.party)
        raise Unprocessable(f"A partner subscribes only to its own referrals: add a backport-filter-criteria "
                            f"{topic.resource_type}?{party}", expression="Subscription.criteria.extension")


async def check_endpoint(unit: Unit, spec: SubscriptionSpec) -> None:
    """The egress policy at registration: the endpoint's name is resolved and every address checked (the
    dispatcher checks again at every delivery)."""
    try:
        await egress(unit.exchange).notify.check(spec.endpoint)
    except EgressRefused as exc:
        raise Unprocessable(f"channel.endpoint {exc}", expression="Subscription.channel.endpoint") from None


class SubscriptionRule:
    """Registered in `exchange.rules`; ignores every other resource type."""

    async def before_write(self, unit: Unit, resource_type: str, body: dict, current: StoredResource | None,
                           method: str) -> None:
        if resource_type != "Subscription":
            return
        if method == "DELETE":
            await queue.set_state(unit.conn, current.id, status="off", lease_owner=None, lease_until=None)
            await queue.cancel_pending(unit.conn, current.id)
            return
        spec = parse_subscription(body, unit.exchange.settings)
        await check_entitled(unit, spec)
        await check_endpoint(unit, spec)
        if current is None:
            body["status"] = "requested"
            body.pop("error", None)
            return
        row = await queue.get_state(unit.conn, current.id)
        if row is not None and row.topic != spec.topic:
            raise Unprocessable("A Subscription's topic cannot change; create a new Subscription",
                                expression="Subscription.criteria")
        present = row.status if row is not None else current.resource.get("status")
        if body.get("status") not in ("requested", "off", present):
            raise Unprocessable("status may be set to 'requested' (to re-activate) or 'off' only",
                                expression="Subscription.status")

    async def after_write(self, unit: Unit, stored: StoredResource, previous: StoredResource | None) -> None:
        if stored.resource_type != "Subscription":
            return
        body = stored.resource
        spec = parse_subscription(body, unit.exchange.settings)
        now = utcnow()
        if previous is None:
            if unit.ctx.organization_id:
                await unit.repo.add_parties("Subscription", stored.id, {unit.ctx.organization_id})
            await queue.insert_state(unit.conn, stored.id, unit.ctx.organization_id, spec, "requested", now)
            await queue.enqueue(unit.conn, stored.id, "handshake", now)
            return
        row = await queue.get_state(unit.conn, stored.id)
        values: dict = {"spec": spec.dumps()}
        status = body.get("status")
        if status == "requested" and (row is None or row.status != "requested"):
            values.update(status="requested", retry_at=None, failing_since=None, last_error=None)
            await queue.cancel_pending(unit.conn, stored.id, kinds=("handshake", "heartbeat"))
            await queue.enqueue(unit.conn, stored.id, "handshake", now)
        elif status == "off":
            values.update(status="off", next_heartbeat=None)
            await queue.cancel_pending(unit.conn, stored.id, kinds=("handshake", "heartbeat"))
        if row is None:
            await queue.insert_state(unit.conn, stored.id, unit.ctx.organization_id, spec, values.get("status",
                                     status or "requested"), now)
        else:
            await queue.set_state(unit.conn, stored.id, **values)
