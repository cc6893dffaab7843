"""The route index in front of FastAPI's routing (exchange.edge.RouteIndex) picks the router FastAPI itself would
pick, for every route's path and every method, and for paths no route serves; and it does pick one for the FHIR
interactions every partner request uses (so the shortcut stays in use)."""
from __future__ import annotations

import re

import pytest
from starlette.routing import Match

from exchange.edge import RouteIndex
from exchange.main import create_app
from exchange.settings import Settings

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
EXTRA = ["/fhir/Task/_history", "/fhir/Task/abc/_history", "/fhir/Task/abc/_history/2", "/fhir/AuditEvent/$export",
         "/fhir/AuditEvent/_search", "/fhir/CodeSystem/abc", "/fhir/Subscription/$status", "/fhir/Subscription/abc",
         "/fhir/Task/abc/$reoffer", "/fhir/Task/$validate", "/fhir/", "/fhir", "/fhir/metadata", "/web/static/app.css",
         "/web/nothing/here", "/nothing", "/", "/fhir/Task/abc/def/ghi", "/fhir/Measure/referral-outcomes",
         "/fhir/Measure/referral-outcomes/$evaluate-measure", "/auth/token", "/metrics", "/healthz"]


@pytest.fixture(scope="module")
def app():
    return create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))


def _paths(app) -> list[str]:  # noqa: ANN001
    from fastapi.routing import _IncludedRouter

    formats = []
    for route in app.router.routes:
        contexts = route.effective_route_contexts() if isinstance(route, _IncludedRouter) else [route]
        formats += [getattr(c, "path_format", None) or getattr(c, "path", "") for c in contexts]
    return sorted({re.sub(r"\{[^}]+\}", "x1", f) for f in formats if f} | set(EXTRA))


def _fastapi_choice(app, scope: dict):  # noqa: ANN001, ANN202
    """The first route of the app's router that matches fully (APIRouter.app's own loop)."""
    for route in app.router.routes:
        match, _ = route.matches(dict(scope))
        if match == Match.FULL:
            return route
    return None


def _scope(path: str, method: str) -> dict:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}


def test_the_index_picks_what_fastapi_picks_or_leaves_it_to_fastapi(app) -> None:  # noqa: ANN001
    index = RouteIndex(app.router)
    checked = 0
    for path in _paths(app):
        for method in METHODS:
            chosen = index.select(_scope(path, method))
            if chosen is not None:
                assert chosen is _fastapi_choice(app, _scope(path, method)), (method, path)
                checked += 1
    assert checked > 30


@pytest.mark.parametrize("method, path", [("GET", "/fhir/Task/abc"), ("PUT", "/fhir/Task/abc"),
                                          ("GET", "/fhir/Task"), ("POST", "/fhir/Patient"), ("POST", "/fhir"),
                                          ("GET", "/fhir/AuditEvent"), ("GET", "/fhir/ServiceRequest/abc")])
def test_the_hot_fhir_interactions_take_the_shortcut(app, method: str, path: str) -> None:  # noqa: ANN001
    chosen = RouteIndex(app.router).select(_scope(path, method))
    assert chosen is not None and chosen is _fastapi_choice(app, _scope(path, method))


def test_a_route_added_later_to_an_included_router_is_seen() -> None:
    from fastapi import APIRouter, FastAPI

    first, second = APIRouter(prefix="/x"), APIRouter(prefix="/x")

    @second.get("/{name}")
    async def generic(name: str) -> dict:
        return {}

    app = FastAPI()
    app.include_router(first)
    app.include_router(second)
    index = RouteIndex(app.router)
    assert index.select(_scope("/x/special", "GET")) is _fastapi_choice(app, _scope("/x/special", "GET"))

    @first.get("/special")  # the earlier router now serves this path: the index must notice
    async def special() -> dict:
        return {}

    chosen = index.select(_scope("/x/special", "GET"))
    assert chosen is _fastapi_choice(app, _scope("/x/special", "GET")) and chosen.original_router is first
