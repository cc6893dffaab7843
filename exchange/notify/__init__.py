"""Notifications: FHIR R4 Subscriptions (backport IG, topic-based, rest-hook) delivered from a transactional outbox.

`install` registers the package into an Exchange: the Subscription rule, the outbox hook, the $status / $events /
$topics routes, the CapabilityStatement contribution and, unless `notify_dispatch_in_server` is off, a dispatcher
that lives as long as the server.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exchange.kernel.exchange import Exchange


def install(exchange: "Exchange") -> None:
    from exchange.notify import tables  # noqa: F401 - declares the tables on the shared metadata
    from exchange.notify.backlog import notification_backlog
    from exchange.notify.dispatcher import Dispatcher
    from exchange.notify.operations import contribute_capability
    from exchange.notify import outbox, queue
    from exchange.notify.outbox import OutboxHook
    from exchange.notify.routes import router
    from exchange.notify.rules import SubscriptionRule
    from exchange.ops import gauges

    exchange.rules.append(SubscriptionRule())
    exchange.hooks.append(OutboxHook())
    exchange.read_along[outbox.GENERATION] = queue.GENERATION  # (the outbox hook's copy of the live subscriptions)
    exchange.routers.append(router)
    exchange.capability.append(contribute_capability)
    gauges.register(exchange, gauges.NOTIFICATION_BACKLOG, notification_backlog)
    if exchange.settings.notify_dispatch_in_server:
        running: list[Dispatcher] = []

        async def start(ex: "Exchange") -> None:
            dispatcher = Dispatcher(ex)
            running.append(dispatcher)
            await dispatcher.start()

        async def stop(_ex: "Exchange") -> None:
            while running:
                await running.pop().stop()

        exchange.jobs.append((start, stop))
