"""The OAuth 2 authorisation server, built on authlib from one module per mechanism: client credentials (RFC 6749,
`rfc6749.py`) with a private_key_jwt assertion (RFC 7523, SMART Backend Services, `rfc7523.py`), token
introspection (RFC 7662, `rfc7662.py`) and revocation (RFC 7009, `rfc7009.py`); 300 s self-contained tokens.

authlib's server is synchronous: the HTTP layer runs it in a worker thread, and the few things it needs from the
async side (the client record, the partner's JWK Set, the used-jti check, revocations) come back through
`anyio.from_thread.run`. One server object is built per request, so its per-request state is never shared.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anyio import from_thread
from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidClientError, UnsupportedGrantTypeError

from exchange.auth import tokens
from exchange.auth.rfc6749 import AUTH_METHOD, Attempt, FormRequest, OAuthClient, SmartClientCredentials
from exchange.auth.rfc7009 import Revocation
from exchange.auth.rfc7523 import UNAUTHENTICATED, PrivateKeyJwt
from exchange.auth.rfc7662 import Introspection
from exchange.keys import SigningKey

if TYPE_CHECKING:
    from exchange.auth.service import AuthService


class ExchangeAuthServer(AuthorizationServer):
    """One request's authorisation server. `endpoint` is token | introspection | revocation."""

    def __init__(self, service: "AuthService", signing: SigningKey, public_jwks: dict, endpoint: str):
        super().__init__()
        self.service = service
        self.signing = signing
        self.public_jwks = public_jwks
        self.attempt = Attempt()
        urls = service.urls
        audiences = [urls.token] if endpoint == "token" else [urls.token, getattr(urls, endpoint)]
        self.register_client_auth_method(AUTH_METHOD, PrivateKeyJwt(self, audiences))
        self.register_grant(SmartClientCredentials)
        self.register_token_generator("default", self._generate)
        self.register_endpoint(Introspection(self))
        self.register_endpoint(Revocation(self))

    def get_token_grant(self, request: OAuth2Request) -> Any:
        try:
            return super().get_token_grant(request)
        except UnsupportedGrantTypeError as error:
            error.description = "Only grant_type=client_credentials is supported (SMART Backend Services)"
            raise

    def query_client(self, client_id: str) -> OAuthClient | None:
        record = from_thread.run(self.service.registry.get, client_id)
        if record is None:
            return None
        self.attempt.client = record
        if not record.usable:  # disabled, or waiting for confirmation: the same answer as an unknown client
            raise InvalidClientError(description=UNAUTHENTICATED)
        return OAuthClient(record)

    def _generate(self, grant_type: str, client: OAuthClient, user: Any = None, scope: str | None = None,
                  expires_in: int | None = None, include_refresh_token: bool = False) -> dict:
        record = client.record
        token, claims = tokens.issue(self.signing, self.service.settings, record.client_id, record.organization_id,
                                     record.role, scope or "")
        self.attempt.issued = claims
        return {"access_token": token, "token_type": "Bearer", "expires_in": claims.expires_at - claims.issued_at,
                "scope": claims.scope}

    def save_token(self, token: dict, request: OAuth2Request) -> None:
        return None  # self-contained JWTs: nothing to store; revocations are stored by jti

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, list]:
        return status, body, list(headers or [])
