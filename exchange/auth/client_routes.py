"""Client management over HTTP for `admin` clients (the CLI `exchange clients` does the same on the server).

    GET   /auth/clients            every client
    POST  /auth/clients            register: {"organization", "role", "scope", "jwks" | "jwks_url", "label"?}
    GET   /auth/clients/{id}       one client
    PATCH /auth/clients/{id}       change any of {"active", "scope", "jwks" | "jwks_url"}
    POST  /auth/clients/{id}/confirm   confirm another admin's registration or re-key

Separation of duties: a client registered or re-keyed here waits (`pending_confirmation`) until a second admin
client confirms it, or the operator does on the server's CLI (`exchange clients confirm`): an admin holding a key
cannot on its own turn it into a partner's credentials and read that partner's referrals.

Each change commits together with its audit record (an exchange event `client-register` / `client-update` /
`client-confirm` on the client's Organization); a refused change is recorded too. Errors are
OperationOutcomes: 403 for a caller without the admin role or confirming its own change, 404 for an unknown client,
409 for a client with nothing to confirm, 422 for a registration that cannot be accepted.
"""
from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from exchange.auth.access import require_role
from exchange.kernel.caller import request_context
from exchange.auth.clients import ClientRecord, audited_change
from exchange.auth.service import auth_service
from exchange.context import RequestContext
from exchange.errors import BadRequest, NotFound
from exchange.fhir.http import read_body

router = APIRouter(prefix="/auth/clients", tags=["auth"])
Ctx = Depends(request_context)
MAX_BYTES = 64 * 1024


async def _body(request: Request) -> dict:
    try:
        body = orjson.loads(await read_body(request, MAX_BYTES))
    except orjson.JSONDecodeError:
        raise BadRequest("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    return body


async def _audited(request: Request, ctx: RequestContext, interaction: str, work) -> ClientRecord:  # noqa: ANN001
    return await audited_change(request.app.state.exchange, ctx, interaction, work)


def _registry(request: Request):  # noqa: ANN202
    return auth_service(request.app.state.exchange).registry


@router.get("", summary="List OAuth clients (admin)")
async def list_clients(request: Request, ctx: RequestContext = Ctx) -> Response:
    require_role(ctx, "admin")
    return JSONResponse([c.as_json() for c in await _registry(request).list()])


@router.get("/{client_id}", summary="Read an OAuth client (admin)")
async def read_client(client_id: str, request: Request, ctx: RequestContext = Ctx) -> Response:
    require_role(ctx, "admin")
    record = await _registry(request).get(client_id)
    if record is None:
        raise NotFound(f"no client '{client_id}'")
    return JSONResponse(record.as_json())


@router.post("", status_code=201, summary="Register an OAuth client (admin)")
async def register_client(request: Request, ctx: RequestContext = Ctx) -> Response:
    body = await _body(request)
    organization = str(body.get("organization") or "").removeprefix("Organization/")
    registry = _registry(request)
    record = await _audited(request, ctx, "client-register", lambda conn: registry.add(
        organization, str(body.get("role") or ""), str(body.get("scope") or ""), jwks=body.get("jwks"),
        jwks_url=body.get("jwks_url"), label=body.get("label"), conn=conn, pending_by=ctx.client_id))
    return JSONResponse(record.as_json(), status_code=201)


@router.patch("/{client_id}", summary="Enable, disable, re-scope or re-key an OAuth client (admin)")
async def change_client(client_id: str, request: Request, ctx: RequestContext = Ctx) -> Response:
    body = await _body(request)
    unknown = set(body) - {"active", "scope", "jwks", "jwks_url"}
    if unknown or not body:
        raise BadRequest("Change any of active, scope, jwks or jwks_url" +
                         (f" (not {', '.join(sorted(unknown))})" if unknown else ""))
    if "active" in body and not isinstance(body["active"], bool):
        raise BadRequest("active must be true or false")
    registry = _registry(request)

    async def work(conn):  # noqa: ANN001, ANN202 - every change in one transaction, with its audit record
        record = None
        if "jwks" in body or "jwks_url" in body:
            record = await registry.set_keys(client_id, jwks=body.get("jwks"), jwks_url=body.get("jwks_url"),
                                             conn=conn, pending_by=ctx.client_id)
        if "scope" in body:
            record = await registry.set_scopes(client_id, str(body["scope"]), conn=conn)
        if "active" in body:
            record = await registry.set_active(client_id, body["active"], conn=conn)
        return record

    record = await _audited(request, ctx, "client-update", work)
    return JSONResponse(record.as_json())


@router.post("/{client_id}/confirm", summary="Confirm another admin's registration or re-key of a client (admin)")
async def confirm_client(client_id: str, request: Request, ctx: RequestContext = Ctx) -> Response:
    registry = _registry(request)
    record = await _audited(request, ctx, "client-confirm",
                            lambda conn: registry.confirm(client_id, by=ctx.client_id, conn=conn))
    return JSONResponse(record.as_json())
