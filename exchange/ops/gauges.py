"""Numbers read from the database, the same for every process: what readiness checks and metrics report.

Computed when asked (a readiness probe, a scrape), so that with several server processes and `exchange worker`s
every answer counts the whole deployment, not one process. Each package registers the readers of its own tables
(`notify.install`: NOTIFICATION_BACKLOG; `audit.install`: AUDIT_UNLINKED), so operations reads them without
importing the packages above it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:
    from exchange.kernel.exchange import Exchange

NOTIFICATION_BACKLOG = "notification-backlog"  # -> pending, held, oldest_age_seconds (notify.backlog.Backlog)
AUDIT_UNLINKED = "audit-unlinked"  # -> records waiting to be linked, None while the log links in the request

Reader = Callable[[AsyncConnection], Awaitable[Any]]


def register(exchange: "Exchange", name: str, reader: Reader) -> None:
    exchange.extensions.setdefault("gauges", {})[name] = reader


async def read(exchange: "Exchange", name: str, conn: AsyncConnection) -> Any:
    """The gauge `name` as its package's reader finds it now."""
    return await exchange.extensions["gauges"][name](conn)
