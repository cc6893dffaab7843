"""The FastAPI application: routers, the one place errors become OperationOutcomes, the safe access log, and the
lifespan (migrations on start, then whatever background work the exchange runs)."""
from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from exchange.errors import FhirError, Issue
from exchange.fhir import bundles
from exchange.fhir.http import FHIR_JSON
from exchange.fhir.rest import router as fhir_router
from exchange.ops import counters
from exchange.ops.logs import access_fields
from exchange.services import Exchange
from exchange.settings import Settings, get_settings
from exchange.store.migrate import upgrade

log = logging.getLogger("exchange")
access_log = logging.getLogger("exchange.access")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _outcome_response(status: int, issues: list[Issue], headers: dict | None = None) -> Response:
    return Response(orjson.dumps(bundles.operation_outcome(issues)), status_code=status, headers=headers,
                    media_type=FHIR_JSON)


def allowed_methods(app: FastAPI, scope: dict) -> str:
    """The methods some route of this path accepts (HEAD wherever GET is), found by asking each route."""
    methods = {method for method in ("GET", "POST", "PUT", "DELETE", "PATCH")
               if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in app.router.routes)}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


class HeadAsGet:
    """HEAD wherever GET works (RFC 9110 §9.3.2): run the GET, send its status and headers without the body."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.body":
                if not message.get("more_body"):
                    await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FhirError)
    async def _fhir_error(_request: Request, exc: FhirError) -> Response:
        return _outcome_response(exc.status, exc.issues, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        text = {404: "No such endpoint", 405: "This HTTP method is not supported on this endpoint"}.get(
            exc.status_code, str(exc.detail))
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # RFC 9110: every method some route of this path answers, not just the first
            headers["Allow"] = allowed_methods(request.app, request.scope)
        return _outcome_response(exc.status_code, [Issue("error", code, text)], headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
        issues = [Issue("error", "invalid", f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}",
                        [".".join(str(p) for p in e.get("loc", ()))]) for e in exc.errors()]
        return _outcome_response(400, issues or [Issue("error", "invalid", "Invalid request")])


class SafeEdge:
    """The outermost layer: request id, `Cache-Control: no-store`, the safe access log, and the 500 of last resort.

    An unexpected exception becomes a 500 OperationOutcome here and is logged by incident id and class only: it is
    never re-raised, so neither Starlette nor uvicorn logs its traceback (whose text can hold SQL parameters or a
    database's DETAIL line with survivor data). The access line names the method, the route template and the
    status, never a path's values or the query string.
    """

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"x-request-id"), None)
        scope.setdefault("state", {})["request_id"] = given or str(uuid.uuid4())
        request_id = scope["state"]["request_id"]
        if not _UUID.match(request_id):  # the caller's text may be anything: logged and echoed only as a hash
            request_id = "sha256:" + hashlib.sha256(request_id.encode()).hexdigest()
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_safely(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                extra = [(b"x-request-id", request_id.encode("latin-1"))]
                if not any(k.lower() == b"cache-control" for k, _ in message.get("headers", [])):
                    extra.append((b"cache-control", b"no-store"))
                message = dict(message, headers=[*message.get("headers", []), *extra])
            await send(message)

        try:
            await self.app(scope, receive, send_safely)
        except Exception as exc:  # noqa: BLE001 - the last resort: log the class, answer 500, never re-raise
            route = scope.get("route")
            log.error("internal error %s on %s %s: %s", request_id, scope.get("method"),
                      getattr(route, "path", None) or "(unmatched)", type(exc).__name__)
            if not status["sent"]:
                response = _outcome_response(500, [Issue("fatal", "exception", f"Internal error (incident "
                                                         f"{request_id}); nothing was changed")])
                await response(scope, receive, send_safely)
        finally:
            begun = scope.get("state", {}).get("begun")  # a request transaction no unit took (or finished)
            if begun is not None:
                await begun.finish(commit=False)
            template = getattr(scope.get("route"), "path", None) or "(unmatched)"
            elapsed = time.perf_counter() - started
            counters.observe_request(scope.get("method"), template, status["code"], elapsed)
            access_log.info("%s %s %s %.1fms", scope.get("method"), template, status["code"], elapsed * 1000,
                            extra=access_fields(scope.get("method"), template, status["code"], elapsed,
                                                scope["state"].get("ctx"), request_id))


def worker_app() -> FastAPI:
    """The app of one `exchange serve --workers` process: the settings the parent exported to the environment."""
    from exchange.ops.logs import configure_logging

    settings = get_settings()
    configure_logging(settings)
    return create_app(settings)


def uvicorn_config(application: FastAPI, settings: Settings, port: int | None = None):  # noqa: ANN201
    """How `exchange serve` runs uvicorn: its own access log off (it would print query strings)."""
    import uvicorn

    return uvicorn.Config(application, host=settings.host, port=settings.port if port is None else port,
                          access_log=False, log_level="info",
                          log_config=None)  # its own records go through the handler of exchange.ops.logs


def _may_serve_fhir(route) -> bool:  # noqa: ANN001
    """Whether the route may match a /fhir path: it does, or it is not a plain route (a router included in a
    router, a mount), so its paths are not known here."""
    path = getattr(route, "path", None)
    return not isinstance(path, str) or path.startswith("/fhir")


def create_app(settings: Settings | None = None, exchange: Exchange | None = None) -> FastAPI:
    settings = settings or get_settings()
    if exchange is None:
        from exchange.wiring import build

        exchange = build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await upgrade(exchange.db)
        await exchange.keys.load()  # without the key-encryption key the exchange does not start
        for start in exchange.on_start:
            await start(exchange)
        try:
            yield
        finally:
            for stop in exchange.on_stop:
                await stop(exchange)
            await exchange.db.dispose()

    app = FastAPI(title="GBV referral exchange", version="0.1.0", lifespan=lifespan,
                  description="FHIR R4 referral exchange for organisations serving survivors of gender-based "
                              "violence. Resources are application/fhir+json; errors are OperationOutcomes.")
    app.state.exchange = exchange
    _install_error_handlers(app)
    # Routes are tried in order, each a regular expression: specific /fhir routes first (they must win over
    # /fhir/{type}/{id}), then the generic ones, and only then those no /fhir path can match (the web inbox,
    # operations, client administration), so a FHIR request does not try them all first.
    serves_fhir = [r for r in exchange.routers if any(_may_serve_fhir(x) for x in r.routes)]
    for router in serves_fhir:
        app.include_router(router)
    app.include_router(fhir_router)
    for router in exchange.routers:
        if router not in serves_fhir:
            app.include_router(router)
    if "web" in exchange.extensions:  # the web inbox (exchange.web): its pages, static files and headers
        from exchange.web import mount

        mount(app)
    app.add_middleware(SafeEdge)  # outermost: after every other middleware
    app.add_middleware(HeadAsGet)
    _install_openapi(app)
    return app


def _install_openapi(app: FastAPI) -> None:
    from fastapi.openapi.utils import get_openapi

    from exchange.openapi_errors import complete

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = complete(get_openapi(title=app.title, version=app.version,
                                                      description=app.description, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi
