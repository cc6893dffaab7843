"""HTTP routes of the authorisation server: token, introspection, revocation, the SMART discovery document and
the exchange's JWKS. Thin: read the form, run authlib (exchange.auth.server) in a worker thread, record the
outcome for the audit log, answer RFC 6749 JSON.
"""
from __future__ import annotations

import uuid
from urllib.parse import parse_qsl

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from authlib.oauth2.rfc6749.errors import InsecureTransportError

from exchange.auth import discovery
from exchange.auth.bearer import REALM
from exchange.auth.rfc6749 import FormRequest, duplicate_parameter, invalid_request
from exchange.auth.server import ExchangeAuthServer
from exchange.auth.service import (INTROSPECT_PATH, JWKS_PATH, REVOKE_PATH, SMART_CONFIG_PATH, TOKEN_PATH,
                                   auth_service)
from exchange.context import RequestContext
from exchange.errors import BadRequest, FhirError, Forbidden, Unauthorized
from exchange.fhir.http import read_body
from exchange.ops import counters
from exchange.ops.ratelimit import limits_of
from exchange.kernel.unit import Event, Failure, open_unit, record_failure

MAX_FORM_BYTES = 16 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

router = APIRouter()


def anonymous_context(request: Request) -> RequestContext:
    """The caller before it has proved who it is (refused token requests are recorded under it)."""
    return RequestContext(client_id=None, organization_id=None, role="anonymous",
                          remote_addr=request.client.host if request.client else None,
                          request_id=getattr(request.state, "request_id", None) or str(uuid.uuid4()))


async def _form(request: Request) -> list[tuple[str, str]] | tuple[int, dict, list]:
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return invalid_request("The request must be application/x-www-form-urlencoded")
    try:
        raw = await read_body(request, MAX_FORM_BYTES)
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except FhirError:
        return invalid_request(f"The request body is larger than {MAX_FORM_BYTES} bytes")
    except UnicodeDecodeError:
        return invalid_request("The request body is not UTF-8")


def _status(status: int, body: dict, malformed: bool) -> int:
    """A failed client authentication is a 401 (RFC 6749 §5.2 allows it), except a malformed assertion: a 400
    invalid_client, which every version of the ONC test kit accepts."""
    if status == 400 and body.get("error") == "invalid_client" and not malformed:
        return 401
    return status


def _respond(status: int, body: dict, headers: list) -> JSONResponse:
    out = {k: v for k, v in headers if k.lower() != "content-type"}
    out.update(_NO_STORE)
    if status == 401:  # RFC 6749 §5.2, RFC 7235: every 401 carries a challenge
        out["WWW-Authenticate"] = f'Bearer realm="{REALM}", error="invalid_client"'
    return JSONResponse(body, status_code=status, headers=out)


def _refusal(body: dict, status: int) -> FhirError:
    """The refusal as the audit log sees it: the OAuth error code and description, never the assertion."""
    text = f"{body.get('error')}: {body.get('error_description') or ''}".strip()
    if status == 401:
        return Unauthorized(text)
    if body.get("error") == "invalid_scope":
        return Forbidden(text)
    return BadRequest(text)


async def _run(request: Request, endpoint: str, url: str) -> tuple[ExchangeAuthServer, int, dict, list]:
    exchange = request.app.state.exchange
    service = auth_service(exchange)
    server = ExchangeAuthServer(service, await exchange.keys.current(), await exchange.keys.token_jwks(),
                                endpoint)
    pairs = await _form(request)
    if isinstance(pairs, tuple):
        return server, *pairs
    duplicate = duplicate_parameter(pairs)
    if duplicate:
        return server, *invalid_request(f"The parameter '{duplicate}' appears more than once")
    try:
        oauth_request = FormRequest(url, dict(pairs), dict(request.headers))
    except InsecureTransportError as error:  # EXCHANGE_PUBLIC_BASE_URL is plain http on a non-loopback host
        return server, *error(None)
    if endpoint == "token":
        status, body, headers = await anyio.to_thread.run_sync(server.create_token_response, oauth_request)
    else:
        status, body, headers = await anyio.to_thread.run_sync(server.create_endpoint_response, endpoint,
                                                                oauth_request)
    return server, status, body, headers


def _client_context(request: Request, server: ExchangeAuthServer) -> RequestContext:
    anonymous = anonymous_context(request)
    client, issued = server.attempt.client, server.attempt.issued
    if client is None:
        return anonymous
    return RequestContext(client_id=client.client_id, organization_id=client.organization_id, role=client.role,
                          scopes=frozenset(issued.scope.split()) if issued else frozenset(),
                          remote_addr=anonymous.remote_addr, request_id=anonymous.request_id,
                          token_id=issued.jti if issued else None)


async def _oauth_endpoint(request: Request, endpoint: str, url: str, interaction: str) -> Response:
    """Run one authlib endpoint and record its outcome in the exchange log (never the assertion or token)."""
    exchange = request.app.state.exchange
    limits = limits_of(exchange) if interaction == "token" else None
    if limits is not None:
        await limits.token_request(request.client.host if request.client else None)
    server, status, body, headers = await _run(request, endpoint, url)
    status = _status(status, body, bool(server.attempt.notes.get("malformed")))
    if limits is not None and server.attempt.issued is not None:  # authenticated: counts for its client
        await limits.token_authenticated(server.attempt.issued.client_id)
    ctx = _client_context(request, server)
    counters.count_oauth(interaction, body.get("error") if status != 200 else None)
    if status != 200:
        await record_failure(exchange, Failure(ctx, interaction, None, None, _refusal(body, status)))
    elif interaction != "revoke" or server.attempt.notes.get("revoked"):  # revoking an unknown token is a no-op
        async with open_unit(exchange, ctx, interaction) as unit:
            unit.record(Event(interaction, "E"))
    return _respond(status, body, headers)


@router.post(TOKEN_PATH, summary="OAuth 2 token endpoint (client_credentials + private_key_jwt)", tags=["auth"])
async def token(request: Request) -> Response:
    return await _oauth_endpoint(request, "token", auth_service(request.app.state.exchange).urls.token, "token")


@router.post(INTROSPECT_PATH, summary="OAuth 2 token introspection (RFC 7662)", tags=["auth"])
async def introspect(request: Request) -> Response:
    url = auth_service(request.app.state.exchange).urls.introspection
    return await _oauth_endpoint(request, "introspection", url, "introspect")


@router.post(REVOKE_PATH, summary="OAuth 2 token revocation (RFC 7009)", tags=["auth"])
async def revoke(request: Request) -> Response:
    url = auth_service(request.app.state.exchange).urls.revocation
    return await _oauth_endpoint(request, "revocation", url, "revoke")


@router.get(SMART_CONFIG_PATH, summary="SMART configuration (discovery)", tags=["auth"])
async def smart_configuration(request: Request) -> Response:
    return JSONResponse(discovery.smart_configuration(auth_service(request.app.state.exchange)))


@router.get(JWKS_PATH, summary="The exchange's public signing keys", tags=["auth"])
async def jwks(request: Request) -> Response:
    return JSONResponse(await request.app.state.exchange.keys.public_jwks(),
                        headers={"Cache-Control": "public, max-age=300"})
