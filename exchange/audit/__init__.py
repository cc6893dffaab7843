"""The exchange log: one BALP-shaped AuditEvent per interaction, hash-chained, signed checkpoints, review.

Modules: `tables` (storage), `builder` (Event/Failure -> AuditEvent), `chain` (canonical form and hashes),
`hook` (the UnitHook that queues records inside the request's transaction), `group_commit` (the records of
requests that change nothing, committed together), `linker` (links the queue into the
chain), `checkpoint` (signed heads),
`verify` (database and exported segments), `review` (auditor search and export), `rest` (HTTP), `retention`
(purge of closed referrals' content), `cli` (`exchange audit ...`); `install` registers it all in an Exchange.
"""
from __future__ import annotations

from exchange.kernel.exchange import Exchange


def install(exchange: Exchange) -> None:
    """Register the exchange log: its hook, routes, capability entry and periodic checkpoints."""
    from exchange.audit.backlog import audit_unlinked
    from exchange.audit.capability import contribute
    from exchange.audit.checkpoint import install_periodic
    from exchange.audit.group_commit import GroupCommit
    from exchange.audit.hook import AuditLog
    from exchange.audit.linker import Linker, install_kicked, install_periodic as install_linker
    from exchange.audit.routes import router
    from exchange.ops import gauges

    linker = Linker(exchange)
    exchange.extensions["audit.linker"] = linker
    group = GroupCommit(exchange)
    exchange.extensions["audit.group_commit"] = group
    exchange.hooks.append(AuditLog(exchange.settings.base_url, linker, group))
    exchange.routers.append(router)
    exchange.capability.append(contribute)
    gauges.register(exchange, gauges.AUDIT_UNLINKED, audit_unlinked)
    install_periodic(exchange)
    install_kicked(exchange, linker)
    install_linker(exchange, linker)
