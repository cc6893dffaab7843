"""One notification to send, and sending it: the backport notification Bundle (its SubscriptionStatus counting
the subscription's events), signed with the exchange's key, posted to the subscriber's endpoint."""
from __future__ import annotations

from dataclasses import dataclass

import httpx

from exchange.notify import bundle as notification
from exchange.notify.delivery import Outcome, post
from exchange.notify.signing import sign
from exchange.notify.spec import SubscriptionSpec
from exchange.kernel.exchange import Exchange


@dataclass
class Step:
    """One notification to send: the subscription's state row and the outbox rows it carries."""
    row: object
    spec: SubscriptionSpec
    rows: list
    events: list[notification.NotificationEvent]


async def send(exchange: Exchange, client: httpx.AsyncClient, subscription_id: str, step: Step) -> Outcome:
    kind = step.rows[0].kind
    status = {"handshake": "requested"}.get(kind, step.row.status)
    base = exchange.settings.fhir_base_url
    parameters = notification.status_parameters(base, subscription_id, step.spec.topic, status, kind,
                                                int(step.row.events_counter), step.events, step.spec.payload)
    body = notification.dumps(notification.notification_bundle(base, parameters, step.events, step.spec.payload))
    signature = await sign(exchange.keys, body)
    return await post(client, step.spec, body, signature)
