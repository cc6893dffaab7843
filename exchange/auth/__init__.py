"""OAuth 2 for partner systems (SMART Backend Services) and the access rules.

`install(exchange)` registers the client registry, the token/introspection/revocation/discovery routes, the
CapabilityStatement's security section, the access write rule, the access policy the kernel and the FHIR layer ask
(`policy.Policy`) and the bearer check every route's `exchange.kernel.caller.request_context` runs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exchange.kernel.exchange import Exchange


def install(exchange: "Exchange") -> None:
    from exchange.auth import tables  # noqa: F401  (declares the auth tables on the shared metadata)
    from exchange.auth.access import AccessRule
    from exchange.auth.bearer import bearer_context
    from exchange.auth.client_routes import router as admin_router
    from exchange.auth.discovery import contribute_security
    from exchange.auth.policy import Policy
    from exchange.auth.routes import router
    from exchange.auth.service import AuthService

    exchange.extensions["auth"] = AuthService(exchange)
    exchange.routers.append(router)
    exchange.routers.append(admin_router)
    exchange.capability.append(contribute_security)
    exchange.rules.insert(0, AccessRule())
    exchange.access_policy = Policy()
    exchange.authenticate = bearer_context
