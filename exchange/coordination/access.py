"""Who may coordinate: coordinator clients of the deployment's coordinating organisation
(`Settings.coordinating_organization`, `exchange.auth.roles.is_coordinator`); everyone else gets 403 (the answer
says nothing about any referral). The exchange itself (the CLI, tests) may always."""
from __future__ import annotations

from exchange.auth.roles import COORDINATOR, is_coordinator
from exchange.context import RequestContext
from exchange.errors import Forbidden
from exchange.settings import Settings


def require_coordinator(ctx: RequestContext, settings: Settings) -> None:
    if ctx.is_system:
        return
    if ctx.role != COORDINATOR:
        raise Forbidden(f"Coordination is for coordinator clients; this client's role is {ctx.role}")
    if not is_coordinator(ctx, settings):
        raise Forbidden("Coordination is for coordinator clients of the deployment's coordinating organisation")
