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
from exchange.kernel.change import Change, FollowUp, Reads, Rows, Share
from exchange.context import RequestContext
from exchange.store.clock import utcnow


async def check_entitled(ctx: RequestContext, reads: Reads, spec: SubscriptionSpec) -> None:
    """A partner subscribes only to referrals its organisation is party to: at least one party filter (owner,
    requester, performer) names only its own organisation, or an `_id` filter names requests it can already see."""
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
            visible = await reads.repo.read_many([(topic.resource_type, v) for v in values], reads.access)
            if len(visible) != len(set(values)):
                raise Unprocessable(f"_id names a {topic.resource_type} your organisation is not party to",
                                    expression="Subscription.criteria.extension")
            pinned = True
    if not pinned:
        party = " or ".join(f"{n}=Organization/{ctx.organization_id}" for n, f in topic.filters.items() if f.party)
        raise Unprocessable(f"A partner subscribes only to its own referrals: add a backport-filter-criteria "
                            f"{topic.resource_type}?{party}", expression="Subscription.criteria.extension")


async def check_endpoint(reads: Reads, spec: SubscriptionSpec) -> None:
    """The egress policy at registration: the endpoint's name is resolved and every address checked (the
    dispatcher checks again at every delivery)."""
    try:
        await egress(reads.exchange).notify.check(spec.endpoint)
    except EgressRefused as exc:
        raise Unprocessable(f"channel.endpoint {exc}", expression="Subscription.channel.endpoint") from None


class SubscriptionRule:
    """Registered in `exchange.rules`; ignores every other resource type. Its `check` returns the body to store with
    the server's status; its follow-ups keep the dispatcher's state row and queue (`Rows`) in step."""

    async def check(self, change: Change, reads: Reads) -> dict | None:
        if change.resource_type != "Subscription" or change.deleted:
            return None
        body = change.after
        spec = parse_subscription(body, reads.exchange.settings)
        await check_entitled(change.who, reads, spec)
        await check_endpoint(reads, spec)
        if change.created:
            amended = {k: v for k, v in body.items() if k != "error"}
            amended["status"] = "requested"
            return amended
        row = await queue.get_state(reads.conn, change.current.id)
        if row is not None and row.topic != spec.topic:
            raise Unprocessable("A Subscription's topic cannot change; create a new Subscription",
                                expression="Subscription.criteria")
        present = row.status if row is not None else change.before.get("status")
        if body.get("status") not in ("requested", "off", present):
            raise Unprocessable("status may be set to 'requested' (to re-activate) or 'off' only",
                                expression="Subscription.status")
        return None

    async def follow(self, change: Change, reads: Reads) -> list[FollowUp]:
        if change.resource_type != "Subscription":
            return []
        subscription_id = change.stored.id
        if change.deleted:
            async def stop(conn) -> None:  # noqa: ANN001
                await queue.set_state(conn, subscription_id, status="off", lease_owner=None, lease_until=None)
                await queue.cancel_pending(conn, subscription_id)
            return [Rows(stop)]
        spec = parse_subscription(change.after, reads.exchange.settings)
        org = change.who.organization_id
        now = utcnow()
        if change.created:
            async def start(conn) -> None:  # noqa: ANN001
                await queue.insert_state(conn, subscription_id, org, spec, "requested", now)
                await queue.enqueue(conn, subscription_id, "handshake", now)
            return [*([Share("Subscription", subscription_id, frozenset({org}))] if org else []), Rows(start)]
        status = change.after.get("status")

        async def keep_in_step(conn) -> None:  # noqa: ANN001
            row = await queue.get_state(conn, subscription_id)
            values: dict = {"spec": spec.dumps()}
            if status == "requested" and (row is None or row.status != "requested"):
                values.update(status="requested", retry_at=None, failing_since=None, last_error=None)
                await queue.cancel_pending(conn, subscription_id, kinds=("handshake", "heartbeat"))
                await queue.enqueue(conn, subscription_id, "handshake", now)
            elif status == "off":
                values.update(status="off", next_heartbeat=None)
                await queue.cancel_pending(conn, subscription_id, kinds=("handshake", "heartbeat"))
            if row is None:
                await queue.insert_state(conn, subscription_id, org, spec, values.get("status", status or "requested"),
                                         now)
            else:
                await queue.set_state(conn, subscription_id, **values)
        return [Rows(keep_in_step)]
