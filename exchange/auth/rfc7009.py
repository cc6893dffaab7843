"""Token revocation (RFC 7009): a client revokes its own access tokens, kept by jti until they would expire."""
from __future__ import annotations

from datetime import datetime, timezone

from anyio import from_thread
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc7009 import RevocationEndpoint

from exchange.auth.rfc7662 import KnownToken, TokenLookup


class Revocation(TokenLookup, RevocationEndpoint):
    def revoke_token(self, token: KnownToken, request: OAuth2Request) -> None:
        expires = datetime.fromtimestamp(token.claims.expires_at, timezone.utc)
        from_thread.run(self.server.service.registry.revoke_token, token.claims.jti, token.claims.client_id,
                        expires)
        self.server.attempt.notes["revoked"] = token.claims.jti
