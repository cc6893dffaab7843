"""What an operator runs the exchange with: health and readiness, metrics, rate limits, request logs, backups.

`install` registers the HTTP parts in an Exchange (like every other package). None of it carries survivor data,
organisation names or ids: only route templates, statuses, counts and ages.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exchange.kernel.exchange import Exchange


def install(exchange: "Exchange") -> None:
    from exchange.ops.health import router as health_router, schema_heads
    from exchange.ops import ratelimit
    from exchange.ops.metrics import router as metrics_router

    ratelimit.install(exchange)
    schema_heads()  # read the migration scripts once, now, not inside a timed readiness probe
    exchange.routers.append(health_router)
    if exchange.settings.metrics_enabled:
        exchange.routers.append(metrics_router)
