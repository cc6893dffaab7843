"""Plain routes run without FastAPI's per-request machinery: `exchange.edge.RouteIndex` calls them directly.

FastAPI answers every request with the same general handler: it builds a Request, opens three exit stacks, reads
the telemetry state, solves the dependency tree (a recursion per dependency, each checking overrides, cache keys,
scopes, generators, and validating the path, query, header and cookie parameters), runs the endpoint and wraps the
exception handlers around it; some 300 Python calls for a read by id whose dependencies are two functions of the
request. Most routes of the exchange are *plain*: a coroutine endpoint returning a Response, whose parameters are
the Request, `str` path parameters, optional `str` headers and dependencies that are themselves coroutines of the
Request alone (content negotiation, the caller). For those, `PlainRoute` does what FastAPI's handler does, in the
same order: each dependency once (FastAPI's per-request cache, keyed by the declared function), router-level ones
first and in declaration order, so a 406 still comes before a 401; an override in `app.dependency_overrides` is
honoured when it is plain too; the path parameters and headers as FastAPI would read them; then the endpoint, whose
Response is sent as it is. An exception goes to the app's exception handlers (starlette's ExceptionMiddleware), as
it does from FastAPI's handler.

Whether a route is plain is decided from FastAPI's own analysis of it (its `Dependant`), once per route; anything
else (a body or query model, a sync function, a dependency with `yield` or sub-dependencies, a response model, a
body size limit, a form, a security scheme, an override that is not plain) is left to FastAPI, unchanged.
"""
from __future__ import annotations

import inspect
from typing import Any, Optional

from starlette.convertors import StringConvertor
from starlette.requests import Request
from starlette.responses import Response


def _plain_dependency(dependant) -> bool:  # noqa: ANN001  (fastapi.dependencies.models.Dependant)
    """A coroutine function of the Request alone (or of nothing): no parameters to validate, nothing below it."""
    return (inspect.iscoroutinefunction(dependant.call) and not dependant.dependencies
            and not (dependant.path_params or dependant.query_params or dependant.header_params
                     or dependant.cookie_params or dependant.body_params)
            and dependant.websocket_param_name is None and dependant.http_connection_param_name is None
            and dependant.response_param_name is None and dependant.background_tasks_param_name is None
            and dependant.security_scopes_param_name is None and not dependant.own_oauth_scopes
            and dependant.scope is None and dependant.concurrency is None)


def _str_field(field, optional: bool) -> bool:  # noqa: ANN001  (a FastAPI ModelField)
    """A `str` parameter (or `str | None` defaulting to None) without constraints, alias choices or a model."""
    info = field.field_info
    if info.metadata or info.validation_alias is not None or getattr(info, "include_in_schema", True) is False:
        return False
    if optional:
        return info.annotation in (str | None, Optional[str]) and info.default is None
    return info.annotation is str and info.is_required()


def _header_key(field) -> str | None:  # noqa: ANN001
    """The header FastAPI reads a parameter from (its own alias resolution), or None when it is not a single one."""
    try:
        from fastapi.dependencies.utils import _get_param_aliases
    except ImportError:
        return None
    aliases = _get_param_aliases(field)
    return aliases[0][1] if len(aliases) == 1 else None


class PlainRoute:
    """A plain route's effective context (its route as included, with the router's dependencies), run directly."""

    def __init__(self, context, dependencies: list[tuple], path: list[str], headers: list[tuple[str, str]]
                 ) -> None:  # noqa: ANN001
        self.context = context
        self.route = context.original_route
        self.endpoint = context.dependant.call
        self.request_name = context.dependant.request_param_name
        self.dependencies = dependencies  # (declared function, name or None, use_cache), in FastAPI's order
        self.path = path  # the path parameters' names
        self.headers = headers  # (parameter name, the header FastAPI reads it from)
        self.overrides: dict = getattr(context.dependency_overrides_provider, "dependency_overrides", None) or {}
        self._request_names: dict[Any, str | None] = {call: name for call, name in
                                                      ((d.call, d.request_param_name)
                                                       for d in context.dependant.dependencies)}

    @classmethod
    def of(cls, context) -> PlainRoute | None:  # noqa: ANN001  (a FastAPI _EffectiveRouteContext)
        """The plain route of `context`, or None when FastAPI must run it."""
        from fastapi.routing import APIRoute

        dependant = getattr(context, "dependant", None)
        if not isinstance(context.original_route, APIRoute) or dependant is None:
            return None
        from fastapi.dependencies.utils import get_typed_return_annotation

        returns = get_typed_return_annotation(dependant.call)
        if (context.max_body_size is not None or context.body_field is not None or context.response_field is not None
                or context.stream_item_field is not None or context.is_sse_stream or context.is_json_stream
                or not inspect.iscoroutinefunction(dependant.call)
                or not (isinstance(returns, type) and issubclass(returns, Response))
                or dependant.query_params or dependant.cookie_params or dependant.body_params
                or dependant.websocket_param_name or dependant.http_connection_param_name
                or dependant.response_param_name or dependant.background_tasks_param_name
                or dependant.security_scopes_param_name or dependant.own_oauth_scopes):
            return None
        if not all(isinstance(context.param_convertors.get(f.name), StringConvertor) and _str_field(f, False)
                   and f.alias == f.name for f in dependant.path_params):
            return None
        headers = []
        for field in dependant.header_params:
            key = _header_key(field)
            if key is None or not _str_field(field, True):
                return None
            headers.append((field.name, key))
        if not all(_plain_dependency(d) for d in dependant.dependencies):
            return None
        return cls(context, [(d.call, d.name, d.use_cache) for d in dependant.dependencies],
                   [f.name for f in dependant.path_params], headers)

    def runnable(self) -> bool:
        """Whether the dependencies, as `app.dependency_overrides` replaces them now, are still plain."""
        if self.overrides:
            for call, _, _ in self.dependencies:
                replaced = self.overrides.get(call)
                if replaced is not None and not _override_plan(replaced, self.context.path_format)[0]:
                    return False
        return True

    async def __call__(self, scope, receive, send, path_params: dict) -> None:  # noqa: ANN001
        scope["path_params"] = {**scope.get("path_params", {}), **path_params}
        scope["endpoint"] = self.endpoint
        scope["route"] = self.route
        request = Request(scope, receive, send)
        values: dict[str, Any] = {}
        solved: dict[Any, Any] = {}  # FastAPI's per-request cache, by the declared function
        for call, name, use_cache in self.dependencies:
            if use_cache and call in solved:
                value = solved[call]
            else:
                run = self.overrides.get(call) if self.overrides else None
                if run is None:
                    run, request_name = call, self._request_names[call]
                else:
                    request_name = _override_plan(run, self.context.path_format)[1]
                value = await (run(**{request_name: request}) if request_name else run())
                solved.setdefault(call, value)
            if name is not None:
                values[name] = value
        params = scope["path_params"]
        for name in self.path:
            values[name] = params[name]
        if self.headers:
            headers = request.headers
            for name, key in self.headers:
                values[name] = headers.get(key)
        if self.request_name is not None:
            values[self.request_name] = request
        response = await self.endpoint(**values)
        if not isinstance(response, Response):
            raise TypeError(f"{self.route.path} returned {type(response).__name__}, not a Response")
        await response(scope, receive, send)


_OVERRIDES: dict[Any, tuple[bool, str | None]] = {}


def _override_plan(call, path: str) -> tuple[bool, str | None]:  # noqa: ANN001
    """Whether an override is plain, and the name of its Request parameter (None: it takes none), from FastAPI's own
    analysis of it. Kept per function (overrides are few: tests replace the caller)."""
    known = _OVERRIDES.get(call)
    if known is None:
        from fastapi.dependencies.utils import get_dependant

        dependant = get_dependant(path=path, call=call)
        known = (_plain_dependency(dependant), dependant.request_param_name)
        if len(_OVERRIDES) < 64:
            _OVERRIDES[call] = known
    return known
