"""Wires the packages into one Exchange: the hooks that see every unit of work and the rules around writes.

The server, the worker and the CLI all build the exchange here, so they behave the same.
"""
from __future__ import annotations

from exchange.services import Exchange
from exchange.settings import Settings


def build(settings: Settings) -> Exchange:
    from exchange import audit, auth, jobs, notify, ops, referral, stats, web

    exchange = Exchange.from_settings(settings)
    exchange.on_start.append(_load_keys)
    auth.install(exchange)
    notify.install(exchange)
    referral.install(exchange)
    web.install(exchange)
    ops.install(exchange)
    stats.install(exchange)
    audit.install(exchange)  # the audit hook last among the hooks: its records are built from the whole unit
    jobs.install(exchange)  # after every package registered its background jobs
    return exchange


async def _load_keys(exchange: Exchange) -> None:
    """Load the signing keys before the first request: units of work use them (page tokens) and on SQLite must not
    open a second write transaction to create them."""
    await exchange.keys.current()
