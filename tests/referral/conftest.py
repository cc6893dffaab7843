"""Partner identities for referral tests.

Each request says who is calling with the X-Test-Organization header (absent: the exchange itself). The override
replaces only the bearer dependency; every rule, access filter and query below it runs for real.
"""
from __future__ import annotations

import httpx
import pytest
from fastapi import Request

from exchange.auth.bearer import request_context
from exchange.context import RequestContext, system_context
BASE = "http://127.0.0.1:8080/fhir"
from . import world

PARTNER_SCOPES = frozenset({"system/*.cruds"})


def _context(request: Request) -> RequestContext:
    org = request.headers.get("X-Test-Organization")
    if not org:
        return system_context(remote_addr="127.0.0.1")
    return RequestContext(client_id=f"client-{org}", organization_id=org, role="partner", scopes=PARTNER_SCOPES,
                          remote_addr="127.0.0.1")


@pytest.fixture
async def http(app):
    app.dependency_overrides[request_context] = _context
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE,
                                 headers={"Content-Type": "application/fhir+json"}) as client:
        yield client


class As:
    """`as_(org_id)` -> headers for a request made by that organisation."""

    def __call__(self, org: str) -> dict[str, str]:
        return {"X-Test-Organization": org}


@pytest.fixture
def as_() -> As:
    return As()


@pytest.fixture
async def ids(http) -> dict[str, str]:
    return await world.directory(http)
