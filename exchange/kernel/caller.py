"""Who is calling: the one FastAPI dependency every authenticated route declares.

It asks the authenticator the exchange was built with (`Exchange.authenticate`: the bearer token check that
`exchange.auth.install` registers, `exchange.auth.bearer`), so the generic FHIR routes depend on it without
importing `auth/`, and every package's routes depend on the same function. Tests that act as the exchange itself
replace this one function (`app.dependency_overrides[request_context]`), for every route at once.
"""
from __future__ import annotations

from fastapi import Request

from exchange.context import RequestContext


async def request_context(request: Request) -> RequestContext:
    """The caller of `request`, authenticated by the exchange's registered authenticator (401 when it refuses)."""
    return await request.app.state.exchange.authenticate(request)
