"""Token introspection (RFC 7662): a client introspects its own access tokens only. The token lookup it shares
with revocation (RFC 7009) checks the signature (reloading the exchange's keys once, if another process rotated
them) and reads the client's state and the revocations, so a narrowed registration narrows the live token."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

from anyio import from_thread
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from exchange.auth import scopes, tokens
from exchange.auth.rfc6749 import AUTH_METHOD, OAuthClient, ServerState


@dataclass(frozen=True)
class KnownToken:
    """An access token of this exchange, as introspection and revocation see it."""
    claims: tokens.AccessClaims
    revoked: bool

    def check_client(self, client: OAuthClient) -> bool:
        return client.get_client_id() == self.claims.client_id

    def is_expired(self) -> bool:
        return self.claims.expires_at <= time.time()

    def is_revoked(self) -> bool:
        return self.revoked


class TokenLookup:
    server: ServerState
    CLIENT_AUTH_METHODS = [AUTH_METHOD]
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def query_token(self, token_string: str, token_type_hint: str | None) -> KnownToken | None:
        service = self.server.service
        try:
            claims = tokens.verify(token_string, self.server.public_jwks, service.settings)
        except tokens.UnknownKey:
            if not service.may_reload_keys():  # the exchange's keys may have been rotated by another process
                return None
            keys = service.exchange.keys
            from_thread.run(keys.refresh)
            try:
                claims = tokens.verify(token_string, from_thread.run(keys.token_jwks), service.settings)
            except tokens.InvalidToken:
                return None
        except tokens.InvalidToken:
            return None
        client, revoked = from_thread.run(service.registry.token_state, claims.client_id, claims.jti)
        if client is not None:  # a narrowed registration narrows the live token
            claims = replace(claims, scope=" ".join(sorted(scopes.effective(claims.scope, client.scopes))))
        return KnownToken(claims, revoked or client is None or not client.usable)


class Introspection(TokenLookup, IntrospectionEndpoint):
    def check_permission(self, token: KnownToken, client: OAuthClient, request: OAuth2Request) -> bool:
        return token.check_client(client)  # a client introspects its own tokens only

    def introspect_token(self, token: KnownToken) -> dict:
        return token.claims.introspection(self.server.service.settings)
