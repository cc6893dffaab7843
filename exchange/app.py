"""The FastAPI application: routers, the one place errors become OperationOutcomes, the safe access log, and the
lifespan (migrations on start, then whatever background work the exchange runs)."""
from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from exchange.errors import FhirError, Issue
from exchange.fhir import bundles
from exchange.fhir.http import FHIR_JSON
from exchange.fhir.rest import router as fhir_router
from exchange.services import Exchange
from exchange.settings import Settings, get_settings
from exchange.store.migrate import upgrade

log = logging.getLogger("exchange")
access_log = logging.getLogger("exchange.access")


def _outcome_response(status: int, issues: list[Issue], headers: dict | None = None) -> Response:
    return Response(orjson.dumps(bundles.operation_outcome(issues)), status_code=status, headers=headers,
                    media_type=FHIR_JSON)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FhirError)
    async def _fhir_error(_request: Request, exc: FhirError) -> Response:
        return _outcome_response(exc.status, exc.issues, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        text = {404: "No such endpoint", 405: "This HTTP method is not supported on this endpoint"}.get(
            exc.status_code, str(exc.detail))
        return _outcome_response(exc.status_code, [Issue("error", code, text)], getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
        issues = [Issue("error", "invalid", f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}",
                        [".".join(str(p) for p in e.get("loc", ()))]) for e in exc.errors()]
        return _outcome_response(400, issues or [Issue("error", "invalid", "Invalid request")])

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> Response:
        incident = getattr(request.state, "request_id", None) or str(uuid.uuid4())
        log.error("internal error %s on %s %s: %s", incident, request.method, request.scope.get("route").path
                  if request.scope.get("route") else "?", type(exc).__name__)
        return _outcome_response(500, [Issue("fatal", "exception",
                                             f"Internal error (incident {incident}); nothing was changed")])


def _install_access_log(app: FastAPI) -> None:
    """Log method, route template, status and duration: never a query string, a body, or a path's values."""

    @app.middleware("http")
    async def _log(request: Request, call_next):  # noqa: ANN001, ANN202
        request.state.request_id = request.headers.get("X-Request-ID") or str(uuid.uuid4())
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "(unmatched)"
        access_log.info("%s %s %s %.1fms", request.method, template, response.status_code,
                        (time.perf_counter() - started) * 1000)
        response.headers["X-Request-ID"] = request.state.request_id
        return response


def create_app(settings: Settings | None = None, exchange: Exchange | None = None) -> FastAPI:
    settings = settings or get_settings()
    if exchange is None:
        from exchange.wiring import build

        exchange = build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await upgrade(exchange.db)
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
    _install_access_log(app)
    if "web" in exchange.extensions:  # the web inbox (exchange.web), before the generic routes
        from exchange.web import mount

        mount(app)
    for router in exchange.routers:  # specific routes first: they must win over /fhir/{type}/{id}
        app.include_router(router)
    app.include_router(fhir_router)
    return app
