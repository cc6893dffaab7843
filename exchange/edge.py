"""The HTTP edge every request passes, put on the app by `exchange/main.py`: the one place errors become
OperationOutcomes, HEAD as GET, the safe access log and the 500 of last resort, uvicorn's configuration, the OpenAPI
document."""
from __future__ import annotations

import hashlib
import logging
import operator
import re
import time
import uuid

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from exchange.errors import FhirError, Issue
from exchange.fhir import bundles
from exchange.fhir.http import FHIR_JSON
from exchange.ops import counters
from exchange.ops.logs import access_fields
from exchange.settings import Settings
from exchange.store.engine import unavailable

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


class RouteIndex:
    """Finds the route that serves a request without asking every route of every router first, and runs a plain
    one directly.

    FastAPI tries the app's routes in order, and an included router answers "does one of mine match?" by trying
    each of its routes, then tries them again to pick one: a read by id tried about 60 routes (some 1,400 Python
    calls, a third of a read's). This index flattens the routes once (again whenever FastAPI's route version
    changes) into their path patterns and methods, in the same order, and scans those with one regular expression
    call each. When the first route that fully matches (path and method) is a plain FastAPI route of an included
    router, it is run as `exchange.plain_routes.PlainRoute` (what FastAPI's handler does for it, without the
    general machinery), or, when it is not plain, by that router's `handle`, which picks among its own routes
    only, as FastAPI would have; anything else (no full match, a 405 or redirect to work out, a mount, a route of
    a kind it does not know, a root path) goes to FastAPI's own routing, unchanged."""

    def __init__(self, router) -> None:  # noqa: ANN001  (the app's APIRouter)
        from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware

        self.router = router
        self._stacked = AsyncExitStackMiddleware  # FastAPI's handlers need its exit stack (plain routes do not)
        self.fallback = AsyncExitStackMiddleware(router)
        self._handles: dict = {}  # id of an included router -> its handle, with the exit stack
        self._version: object = None
        self._buckets: dict[tuple, list[tuple]] = {(): []}  # a path's first segments -> the entries it may reach
        self._routers: list = [router]  # every router the index read: a route added to any of them rebuilds it

    def _routes_version(self) -> object:
        """Changes whenever a route is added to a router the index read (FastAPI counts them in each router; its
        own `_get_routes_version` walks every router for the sum, some 130 calls)."""
        return sum(map(_ROUTES_VERSION, self._routers)), len(self.router.routes)

    def _build(self) -> list[tuple]:
        from fastapi.routing import APIRoute

        from exchange.plain_routes import PlainRoute

        try:
            from fastapi.routing import _IncludedRouter
        except ImportError:  # (a FastAPI that flattens included routes: nothing to index)
            return []
        # (prefix, match, methods or None, the included router or None: fall back, its plain route or None)
        entries: list[tuple] = []
        self._routers = [self.router, *_included_routers(self.router, _IncludedRouter)]
        self._handles = {id(route): self._stacked(route.handle) for route in self.router.routes
                         if isinstance(route, _IncludedRouter)}
        for route in self.router.routes:
            if isinstance(route, _IncludedRouter):
                form_limits = getattr(getattr(route, "include_context", None), "form_limits", None)
                for context in route.effective_route_contexts():
                    regex = getattr(context, "path_regex", None)
                    if isinstance(context.original_route, APIRoute) and regex is not None and context.methods:
                        entries.append((_literal_prefix(context.path_format), regex.match,
                                        frozenset(context.methods), route,
                                        None if form_limits else PlainRoute.of(context)))
                    else:  # a kind of route this index does not read: reaching it means FastAPI decides
                        entries.append(("", None, None, None, None))
            else:
                regex = getattr(route, "path_regex", None)
                entries.append((_literal_prefix(getattr(route, "path_format", "")) if regex is not None else "",
                                regex.match if regex is not None else None, None, None, None))
        return entries

    def select(self, scope) -> object | None:  # noqa: ANN001
        """The included router FastAPI would pick for `scope`, or None when FastAPI's own routing should decide."""
        found = self._find(scope)
        return None if found is None else found[0]

    def plain(self, scope):  # noqa: ANN001, ANN201
        """The plain route (`exchange.plain_routes.PlainRoute`) that would run `scope`, or None."""
        found = self._find(scope)
        return None if found is None else found[1]

    def _find(self, scope) -> tuple | None:  # noqa: ANN001
        """(the included router, its plain route or None, the path's match), or None: FastAPI decides."""
        if scope["type"] != "http" or scope.get("root_path") or getattr(self.router, "form_limits", None):
            return None
        version = self._routes_version()
        if version != self._version:
            self._index(self._build())
            self._version = self._routes_version()
        path, method = scope["path"], scope["method"]
        key = tuple(path.split("/", 3)[1:3])
        buckets = self._buckets
        entries = buckets.get(key) or buckets.get(key[:1]) or buckets[()]
        for prefix, match, methods, included, plain in entries:
            if not path.startswith(prefix):
                continue
            if match is None or methods is None:  # a route whose matching is FastAPI's to judge
                return None
            if method in methods:  # (a partial match: FastAPI looks on, so do we)
                matched = match(path)
                if matched is not None:
                    return included, plain, matched
        return None

    def _index(self, entries: list[tuple]) -> None:
        """The entries by the first one or two path segments their literal prefix names whole (`/fhir/Task/` names
        fhir and Task, `/fhir/` fhir, `/fhir` none). A key's list holds, in order, every entry whose named segments
        begin the key; the list of a first segment alone holds only those naming no second one (it serves paths
        whose second segment no entry names)."""
        def named(prefix: str) -> tuple:
            return tuple(prefix.split("/")[1:-1][:2]) if prefix.startswith("/") else ()

        names = [named(e[0]) for e in entries]
        keys = {k[:n] for k in names for n in range(len(k) + 1)} | {()}
        self._buckets = {key: [e for e, k in zip(entries, names) if key[:len(k)] == k and len(k) <= len(key)]
                         for key in keys}

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        found = self._find(scope)
        if found is None:
            await self.fallback(scope, receive, send)
            return
        included, plain, matched = found
        scope.setdefault("router", self.router)
        if plain is not None and plain.runnable():
            await plain(scope, receive, send, matched.groupdict())  # (plain: every parameter a plain string)
            return
        await self._handles[id(included)](scope, receive, send)


_ROUTES_VERSION = operator.attrgetter("_routes_version")


def _included_routers(router, kind) -> list:  # noqa: ANN001
    """The routers included in `router`, at any depth."""
    found = []
    for route in router.routes:
        if isinstance(route, kind):
            found += [route.original_router, *_included_routers(route.original_router, kind)]
    return found


def _literal_prefix(path_format: str) -> str:
    """The part of a route's path before its first parameter: a path that does not start with it cannot match."""
    return path_format.split("{", 1)[0]


def install_error_handlers(app: FastAPI) -> None:
    """The one place errors become OperationOutcomes: FhirError, an unknown route or method, bad parameters."""
    @app.exception_handler(FhirError)
    async def _fhir_error(request: Request, exc: FhirError) -> Response:
        headers = exc.headers
        if exc.status == 405 and "Allow" not in headers:  # (a transaction's entry: the methods of the base)
            headers = {**headers, "Allow": allowed_methods(request.app, request.scope)}
        return _outcome_response(exc.status, exc.issues, headers)

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


class Edge:
    """The outermost layer: HEAD as GET, request id, `Cache-Control: no-store`, the safe access log, and the 500 of
    last resort.

    HEAD wherever GET works (RFC 9110 §9.3.2): the GET runs (and is logged as one), and its status and headers are
    sent without the body. An unexpected exception becomes a 500 OperationOutcome here (503 with Retry-After when it
    is that the database could not be had) and is logged by incident id and class only: it is never re-raised, so
    neither Starlette nor uvicorn logs its traceback (whose text can hold SQL parameters or a database's DETAIL line
    with survivor data). The access line names the method, the route
    template and the status, never a path's values or the query string.
    """

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":
            scope, send = {**scope, "method": "GET"}, _headers_only(send)
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
        except Exception as exc:  # noqa: BLE001 - the last resort: log the class, answer 500 (503), never re-raise
            route = scope.get("route")
            (log.warning if unavailable(exc) else log.error)(
                "%s %s on %s %s: %s", "database unavailable:" if unavailable(exc) else "internal error", request_id,
                scope.get("method"), getattr(route, "path", None) or "(unmatched)", type(exc).__name__)
            if not status["sent"]:
                await _last_resort(exc, request_id)(scope, receive, send_safely)
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


RETRY_AFTER_UNAVAILABLE = 5  # seconds: a pool drains, a restarting database takes connections again, within them


def _last_resort(exc: Exception, request_id: str) -> Response:
    """An exception nobody handled: 503 with Retry-After when the database could not be had (nothing was begun:
    busy, or refusing connections: `exchange.store.engine.unavailable`), else 500 by incident id."""
    if unavailable(exc):
        return _outcome_response(503, [Issue("error", "transient", "The exchange's database is busy or unreachable; "
                                              "nothing was changed; retry after the seconds of Retry-After")],
                                 headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})
    return _outcome_response(500, [Issue("fatal", "exception", f"Internal error (incident {request_id}); nothing was "
                                                               "changed")])


def _headers_only(send):  # noqa: ANN001, ANN202
    """`send` for a HEAD run as a GET: the status and headers, an empty body."""
    async def send_headers_only(message) -> None:  # noqa: ANN001
        if message["type"] == "http.response.body":
            if not message.get("more_body"):
                await send({"type": "http.response.body", "body": b""})
            return
        await send(message)

    return send_headers_only


# FastAPI's native OpenTelemetry off: the exchange exports no traces, metrics or logs through it (its metrics are
# exchange.ops.metrics, its access log the Edge's, neither naming a path's values), and with it on each request
# asked the global tracer, meter and logger providers whether anyone was listening; a span would carry the
# request's path, which names resource ids.
NO_TELEMETRY = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False, "auto_configure": False}


class ExchangeApp(FastAPI):
    """FastAPI whose middleware stack is the exchange's edge: `Edge` (outermost), the middleware packages add (the
    web inbox's headers), Starlette's ExceptionMiddleware (the handlers of `install_error_handlers`), then the
    `RouteIndex`.

    FastAPI's own outer layers do nothing here, and every request passed them on the way in and at each resumption
    after a database round trip: ServerErrorMiddleware (the Edge answers every exception itself and never re-raises
    one), the telemetry exception hook (telemetry is off), the application body limit (none is set: the FHIR routes
    bound their bodies themselves) and FastAPI's telemetry check in `__call__`. FastAPI's exit stack, which its own
    request handler needs, is opened by the RouteIndex for the routes it leaves to FastAPI, and not for plain ones.
    """

    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(telemetry=NO_TELEMETRY, **kwargs)
        self.route_index = RouteIndex(self.router)  # (it reads the routes when the first request comes)

    def build_middleware_stack(self):  # noqa: ANN201
        from starlette.middleware.exceptions import ExceptionMiddleware

        if self.max_body_size is not None or 500 in self.exception_handlers or Exception in self.exception_handlers:
            raise TypeError("the exchange's Edge is the 500 of last resort and its routes bound their own bodies")
        app = ExceptionMiddleware(self.route_index, handlers=self.exception_handlers, debug=self.debug)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return Edge(app)

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http" or self.middleware_stack is None or self.root_path:
            await super().__call__(scope, receive, send)  # (the lifespan, the first request, a root path)
            return
        scope["app"] = self  # what Starlette's __call__ does; FastAPI's adds only telemetry, which is off
        await self.middleware_stack(scope, receive, send)


def uvicorn_config(application: FastAPI, settings: Settings, port: int | None = None):  # noqa: ANN201
    """How `exchange serve` runs uvicorn: its own access log off (it would print query strings)."""
    import uvicorn

    return uvicorn.Config(application, host=settings.host, port=settings.port if port is None else port,
                          access_log=False, log_level="info",
                          log_config=None)  # its own records go through the handler of exchange.ops.logs


def install_openapi(app: FastAPI) -> None:
    """The app's OpenAPI document, with the OperationOutcome answers every route can give (openapi_errors)."""
    from fastapi.openapi.utils import get_openapi

    from exchange.openapi_errors import complete

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = complete(get_openapi(title=app.title, version=app.version,
                                                      description=app.description, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi
