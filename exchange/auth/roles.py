"""The client roles: the one definition every other module imports (the registry, the access rules, the log).

- `partner`: a referring or receiving organisation's system;
- `auditor`: the coordinating body's auditor: reads the exchange log and the directory;
- `admin`: runs the exchange: manages the directory and (with a second admin) partner credentials;
- `coordinator`: the deployment's coordinating organisation (`Settings.coordinating_organization`, e.g. the GBV
  sub-cluster lead): sees that an escalated referral exists, its type, area, the ages of its steps and its parties,
  and nothing about her (no Patient, Consent, documents, notes); reads the directory.

Other code asks `require_role(ctx, COORDINATOR)` (`exchange.auth.access`) or `is_coordinator(ctx, settings)`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exchange.context import RequestContext
    from exchange.settings import Settings

PARTNER = "partner"
AUDITOR = "auditor"
ADMIN = "admin"
COORDINATOR = "coordinator"
ROLES: tuple[str, ...] = (PARTNER, AUDITOR, ADMIN, COORDINATOR)


def is_coordinator(ctx: "RequestContext", settings: "Settings") -> bool:
    """A coordinator client of the deployment's coordinating organisation (a coordinator client of any other
    organisation, or one registered before the setting changed, is no coordinator of this deployment)."""
    return (ctx.role == COORDINATOR and settings.coordinating_organization is not None
            and ctx.organization_id == settings.coordinating_organization)
