"""Who may ask for statistics: auditor clients, and coordinator clients of the deployment's coordinating
organisation (`Settings.coordinating_organization`), with a SMART scope that permits reading MeasureReport
(`system/MeasureReport.rs`, `system/MeasureReport.r`, `system/*.rs`): statistics are served as MeasureReports, so
they are asked for like one. Partners and admins get 403 whatever their scopes; the exchange itself (the CLI) may
always ask."""
from __future__ import annotations

from exchange.auth.access import STATS_ROLES, check_permission
from exchange.auth.roles import COORDINATOR, is_coordinator
from exchange.context import RequestContext
from exchange.errors import Forbidden
from exchange.settings import Settings


def require_statistics_access(ctx: RequestContext, settings: Settings) -> None:
    if ctx.is_system:
        return
    if ctx.role not in STATS_ROLES:
        raise Forbidden(f"Statistics are for {' and '.join(sorted(STATS_ROLES))} clients; this client's role is "
                        f"{ctx.role}")
    if ctx.role == COORDINATOR and not is_coordinator(ctx, settings):
        raise Forbidden("Statistics are for coordinator clients of the deployment's coordinating organisation")
    check_permission(ctx, "MeasureReport", "r")
