"""The bearer check that says who is calling: a bearer access token of a registered, active client.

`exchange.auth.install` registers it as the exchange's authenticator; every FHIR route except `metadata` and the
discovery document (and every other package's authenticated route) runs it through the one dependency
`exchange.kernel.caller.request_context`. A missing, malformed, expired or revoked token, or one of a disabled (or unconfirmed) client, gets 401 with `WWW-Authenticate: Bearer` and an OperationOutcome.
The exchange's own system context (CLI, demo loader, dispatcher) is never produced here: it is not reachable over
HTTP. The token's scopes count only as far as the client's current registration allows (narrowing a client's
scopes narrows its live tokens at once).
"""
from __future__ import annotations

import uuid

from fastapi import Request

from exchange.auth import scopes, tokens
from exchange.auth.service import auth_service
from exchange.context import ReadAlong, RequestContext
from exchange.errors import Unauthorized
from exchange.ops.ratelimit import limits_of
from exchange.store.engine import BegunTransaction

REALM = "exchange"


def _challenge(error: str | None = None, description: str | None = None) -> dict:
    value = f'Bearer realm="{REALM}"'
    if error:
        value += f', error="{error}"'
    if description:
        value += f', error_description="{description}"'
    return {"WWW-Authenticate": value}


def _refuse(description: str, error: str | None = "invalid_token") -> Unauthorized:
    return Unauthorized(description, headers=_challenge(error, description))


async def _verify(exchange, service, token: str) -> tokens.AccessClaims:  # noqa: ANN001
    """Signature and claims, checked once per token and process (`exchange.auth.verified`: bounded by the token's
    expiry and its key); revocation and the client's state are read below, on every request."""
    try:
        return service.verified.verify(token, await exchange.keys.token_jwks(), exchange.settings)
    except tokens.UnknownKey:
        if not service.may_reload_keys():  # at most one reload per interval: unknown kids are cheap to send
            raise
        await exchange.keys.refresh()
        return service.verified.verify(token, await exchange.keys.token_jwks(), exchange.settings)


async def bearer_context(request: Request) -> RequestContext:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("This endpoint needs a bearer access token from the token endpoint "
                           "(see /fhir/.well-known/smart-configuration)", headers=_challenge())
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _refuse("The Authorization header must be 'Bearer <access token>'", "invalid_request")
    exchange = request.app.state.exchange
    service = auth_service(exchange)
    try:
        claims = await _verify(exchange, service, token)
    except tokens.InvalidToken as exc:
        raise _refuse(str(exc)) from None
    limits = limits_of(exchange)
    if limits is not None:
        # Counted before the request's transaction begins: a claim of allowance may take a connection of its own
        # (PostgreSQL's counts), and requests holding theirs while the one claiming waited for the pool would hold
        # every connection of it. The token's signature is checked, so the client counted is the caller.
        await limits.bearer(claims.client_id)
    begun = await begin_request_transaction(request, exchange)
    try:
        client, revoked = await service.registry.token_state(claims.client_id, claims.jti,
                                                             begun.conn if begun else None)
        if client is None or not client.usable:
            raise _refuse("The client of this access token is disabled")
        if revoked:
            raise _refuse("The access token was revoked")
    except BaseException:
        if begun is not None:
            await begun.finish(commit=False)
        raise
    ctx = RequestContext(client_id=client.client_id, organization_id=client.organization_id, role=client.role,
                         scopes=scopes.effective(claims.scope, client.scopes),
                         remote_addr=request.client.host if request.client else None,
                         request_id=getattr(request.state, "request_id", None) or str(uuid.uuid4()),
                         token_id=claims.jti, begun=begun,
                         read_along=ReadAlong(client.read_along) if client.read_along else None)
    request.state.ctx = ctx
    return ctx


async def begin_request_transaction(request: Request, exchange) -> BegunTransaction | None:  # noqa: ANN001
    """On PostgreSQL the request's one transaction starts here, so the token check is its first statement (the
    app finishes it when the response is done, if no unit did). SQLite keeps the check in a short read transaction
    of its own, deferred and not queued with the writers (`Database.read`): beginning the request's transaction
    there would hold the single write lock while the request body is still being received, and a refusal's record
    (its own transaction, after the rollback) would wait for a lock its own request holds."""
    if exchange.db.is_sqlite:
        return None
    begun = await BegunTransaction.begin(exchange.db.engine)
    request.state.begun = begun
    return begun
