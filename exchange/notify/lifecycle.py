"""Status changes the exchange makes to a Subscription (active after the handshake, error after failures): written
as a new version of the resource and in the dispatcher's state row, in one audited unit of work."""
from __future__ import annotations

from exchange.context import system_context
from exchange.fhir.indexing import index_rows
from exchange.notify import queue
from exchange.kernel.exchange import Exchange
from exchange.store.clock import utcnow
from exchange.store.values import Superseded
from exchange.kernel.unit import Event, open_unit


async def set_status(exchange: Exchange, subscription_id: str, status: str, error: str | None = None,
                     expected: tuple[str, ...] = queue.DELIVERING, **state_values) -> bool:
    """Move the subscription to `status` if it is still in one of `expected` (a subscriber's own change wins)."""
    try:
        return await _set_status(exchange, subscription_id, status, error, expected, state_values)
    except Superseded:
        return False  # the subscriber wrote a version meanwhile (its unit committed nothing); the next attempt sees it


async def _set_status(exchange: Exchange, subscription_id: str, status: str, error: str | None,
                      expected: tuple[str, ...], state_values: dict) -> bool:
    async with open_unit(exchange, system_context(), "update", "Subscription", subscription_id) as unit:
        row = await queue.get_state(unit.conn, subscription_id)
        if row is None or row.status not in expected:
            return False
        current = await unit.repo.read("Subscription", subscription_id)
        if current is None or current.deleted:
            return False
        body = dict(current.resource)
        body["status"] = status
        if error:
            body["error"] = error
        else:
            body.pop("error", None)
        updated = await unit.repo.update(current, body, index_rows("Subscription", body), now=utcnow())
        await queue.set_state(unit.conn, subscription_id, status=status, last_error=error, **state_values)
        unit.record(Event("update", "U", "Subscription", subscription_id, updated.version_id, stored=updated,
                          previous=current))
    return True
