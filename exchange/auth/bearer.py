"""The FastAPI dependency that says who is calling.

Until OAuth lands (issue 3) the server accepts only loopback connections and treats them as the exchange itself.
"""
from __future__ import annotations

import uuid

from fastapi import Request

from exchange.context import RequestContext, system_context
from exchange.errors import Unauthorized

_LOOPBACK = ("127.0.0.1", "::1", "localhost", "testclient")


async def request_context(request: Request) -> RequestContext:
    remote = request.client.host if request.client else None
    if remote not in _LOOPBACK and remote is not None:
        raise Unauthorized("This exchange accepts loopback connections only until OAuth is configured",
                           headers={"WWW-Authenticate": "Bearer"})
    ctx = system_context(remote_addr=remote, request_id=request.headers.get("X-Request-ID") or str(uuid.uuid4()))
    request.state.ctx = ctx
    return ctx
