"""Registers the exchange log in an Exchange: its hook, routes, capability entry and periodic checkpoints."""
from __future__ import annotations

from exchange.audit.capability import contribute
from exchange.audit.checkpoint import install_periodic
from exchange.audit.hook import AuditLog
from exchange.audit.rest import router


def register(exchange) -> None:  # noqa: ANN001
    exchange.hooks.append(AuditLog(exchange.settings.base_url))
    exchange.routers.append(router)
    exchange.capability.append(contribute)
    install_periodic(exchange)
