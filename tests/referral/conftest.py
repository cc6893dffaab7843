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


@pytest.fixture
def make_referral(http, as_, ids):
    """Post a referral transaction as the hotline to the given organisations; return {type: id}."""
    async def make(to_keys=("shelter",), expect: int = 200, **kwargs):  # noqa: ANN001, ANN202
        to = [k if "/" in k else f"Organization/{ids[k]}" for k in to_keys]
        r = await http.post("", json=world.referral_bundle(ids, to, **kwargs), headers=as_(ids["hotline"]))
        assert r.status_code == expect, r.text
        return world.created_ids(r.json()) if expect == 200 else r
    return make


async def change_task(http, headers: dict, task_id: str, if_match: bool = False, **changes):  # noqa: ANN001
    """Read the Task as the caller, apply `changes` (None removes an element), PUT it back."""
    current = (await http.get(f"/Task/{task_id}", headers=headers)).json()
    body = {k: v for k, v in {**current, **changes}.items() if v is not None}
    extra = {"If-Match": f'W/"{current["meta"]["versionId"]}"'} if if_match else {}
    return await http.put(f"/Task/{task_id}", json=body, headers={**headers, **extra})


def rule_of(response) -> str:  # noqa: ANN001
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    diagnostics = body["issue"][0]["diagnostics"]
    if diagnostics.startswith("Bundle.entry["):  # a transaction names the entry first
        diagnostics = diagnostics.split(": ", 1)[1]
    return diagnostics.split(":")[0]
