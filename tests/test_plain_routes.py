"""Plain routes (exchange.plain_routes) answer exactly as FastAPI's own handler does: the same app served with and
without the route index gives the same status, headers and body, dependencies run in FastAPI's order and once
each, overrides are honoured (a plain one by the plain route, any other by FastAPI), and the routes every partner
request uses are plain (so the shortcut stays in use)."""
from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import Response

from exchange.edge import Edge, ExchangeApp
from exchange.main import create_app
from exchange.settings import Settings


def _app(indexed: bool, calls: list) -> FastAPI:
    async def first(request: Request) -> None:
        calls.append("first")
        if request.headers.get("x-refuse") == "first":
            raise HTTPException(406, "first refuses")

    async def second(request: Request) -> str:
        calls.append("second")
        if request.headers.get("x-refuse") == "second":
            raise HTTPException(401, "second refuses", headers={"WWW-Authenticate": "Bearer"})
        return "caller"

    router = APIRouter(prefix="/x", dependencies=[Depends(first)])

    @router.get("/{name}/{part}")
    async def both(name: str, part: str, request: Request, who: str = Depends(second), again: str = Depends(second),
                   if_match: str | None = Header(default=None)) -> Response:
        return Response(f"{name} {part} {who} {again} {if_match} {request.url.path}", status_code=203,
                        headers={"X-Calls": ",".join(calls)})

    @router.put("/{name}")
    async def counted(name: str, who: str = Depends(second)) -> Response:
        return Response(name + who, media_type="text/plain")

    app = ExchangeApp() if indexed else FastAPI()
    if not indexed:  # FastAPI's own stack and handler, inside the same edge
        app.add_middleware(Edge)
    app.include_router(router)
    app.state.second = second
    return app


REQUEST_ID = "6f1c7a52-6d3e-4a43-9b0e-3f7f0b8f0a11"
REQUESTS = [("GET", "/x/a/b", {}), ("GET", "/x/a%20b/c", {"If-Match": 'W/"2"'}), ("GET", "/x/a/b", {"x-refuse": "first"}),
            ("GET", "/x/a/b", {"x-refuse": "second"}), ("PUT", "/x/n", {}), ("POST", "/x/n", {}), ("GET", "/x/n", {}),
            ("PUT", "/x/n", {"x-refuse": "first"}), ("HEAD", "/x/a/b", {}), ("HEAD", "/x/n", {})]


async def _answers(app: FastAPI, calls: list) -> list:
    answers = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        for method, path, headers in REQUESTS:
            calls.clear()
            r = await http.request(method, path, headers={**headers, "X-Request-ID": REQUEST_ID})
            answers.append((method, path, r.status_code, sorted(r.headers.items()), r.content, list(calls)))
    return answers


async def test_a_plain_route_answers_as_fastapi_does() -> None:
    plain_calls, fastapi_calls = [], []
    plain_app, fastapi_app = _app(True, plain_calls), _app(False, fastapi_calls)
    assert plain_app.route_index.plain(
        {"type": "http", "method": "GET", "path": "/x/a/b", "root_path": ""}) is not None
    plain, fastapi = await _answers(plain_app, plain_calls), await _answers(fastapi_app, fastapi_calls)
    assert plain == fastapi
    assert plain[0][4] == b"a b caller caller None /x/a/b" and plain[0][5] == ["first", "second"]
    assert plain[2][2] == 406 and plain[2][5] == ["first"]  # the router's dependency first: the route's never ran


@pytest.mark.parametrize("plain_override", [True, False])
async def test_an_override_is_honoured(plain_override: bool) -> None:
    answers = []
    for indexed in (True, False):
        calls: list = []
        app = _app(indexed, calls)

        async def replaced(request: Request) -> str:
            return "tester " + request.method

        app.dependency_overrides[app.state.second] = replaced if plain_override else (lambda: "sync tester")
        answers.append(await _answers(app, calls))
    assert answers[0] == answers[1]
    assert answers[0][4][4] == (b"ntester PUT" if plain_override else b"nsync tester")


@pytest.mark.parametrize("method, path", [("GET", "/fhir/Task/abc"), ("PUT", "/fhir/Task/abc"),
                                          ("GET", "/fhir/Task"), ("POST", "/fhir/Patient"), ("POST", "/fhir"),
                                          ("GET", "/fhir/AuditEvent"), ("GET", "/fhir/metadata")])
def test_the_hot_fhir_interactions_are_plain(method: str, path: str) -> None:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    assert app.route_index.plain({"type": "http", "method": method, "path": path, "root_path": ""}) is not None


async def test_the_format_is_refused_before_the_caller_is_asked(app) -> None:  # noqa: ANN001
    """406 before 401: content negotiation is the FHIR router's dependency, run before the route's caller check."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080") as http:
        refused = await http.get("/fhir/Task/abc", headers={"Accept": "application/fhir+xml"})
        unknown = await http.get("/fhir/Task/abc")
    assert refused.status_code == 406 and refused.json()["issue"][0]["expression"] == ["Accept"]
    assert unknown.status_code == 401 and unknown.headers["www-authenticate"].startswith("Bearer")
