"""Authorisation at sending time: an event goes to a subscriber only while its organisation is a party of the
event's focus. The others are withheld (never sent, not replayed)."""
from __future__ import annotations

from sqlalchemy import update

from exchange.need_to_know.parties import is_party
from exchange.notify.tables import notification_outbox as outbox
from exchange.store.repository import Repository


async def still_parties(conn, repo: Repository, organization_id: str | None, rows: list) -> list:  # noqa: ANN001
    """The rows whose focus `organization_id` is a party of (all of them for the exchange's own subscriptions,
    which have no organisation); the others are marked withheld."""
    allowed, withheld = [], []
    for item in rows:
        if await is_party(repo, organization_id, item.focus_type, item.focus_id):
            allowed.append(item)
        else:
            withheld.append(item.id)
    if withheld:
        await conn.execute(update(outbox).where(outbox.c.id.in_(withheld), outbox.c.state == "pending")
                           .values(state="withheld", last_error="receiver no longer a party"))
    return allowed
