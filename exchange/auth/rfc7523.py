"""RFC 7523 client authentication (private_key_jwt, SMART Backend Services) with the checks authlib does not make:
RS384/ES384 accepted explicitly (none and HMAC never), `kid` required and looked up (one refetch of a JWKS URL on an
unknown kid), a `jku` only if it is the registered JWKS URL, `exp` at most `assertion_max_seconds` ahead, `jti` kept
in the database under a unique key. Every failure that would tell an unauthenticated caller whether a client exists
gets one answer (UNAUTHENTICATED)."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from anyio import from_thread
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from exchange.auth.jwks import JwksFetchError
from exchange.auth.rfc6749 import OAuthClient, ServerState

# One answer for every failure that would otherwise tell an unauthenticated caller whether a client exists, is
# enabled or confirmed, or has a key with that kid (issue 11): unknown, disabled, pending, unknown kid, bad signature.
UNAUTHENTICATED = "The client assertion could not be verified for this client"


class PrivateKeyJwt(JWTBearerClientAssertion):
    """RFC 7523 client authentication with the SMART Backend Services checks authlib does not make."""

    def __init__(self, server: ServerState, audiences: list[str]):
        super().__init__(validate_jti=True, leeway=server.service.settings.clock_skew_seconds)
        self.server = server
        self.audiences = audiences
        self._client: OAuthClient | None = None

    def get_audiences(self) -> list[str]:
        return self.audiences

    def __call__(self, query_client: Any, request: OAuth2Request) -> Any:
        """authlib's RFC 7523 flow, reordered so that nothing an unauthenticated caller sees depends on the client:
        form and header checks first (400 for a wrong assertion type or a malformed assertion, as the ONC kit
        expects), then one answer (UNAUTHENTICATED) for an unknown, disabled or pending client, an unknown key
        and a wrong signature."""
        form = request.form
        assertion_type, assertion = form.get("client_assertion_type"), form.get("client_assertion")
        if assertion_type is None and not assertion:  # no client authentication at all: RFC 6749 invalid_client
            raise InvalidClientError(description="Authenticate with a signed client_assertion (private_key_jwt): "
                                                 f"client_assertion_type={self.CLIENT_ASSERTION_TYPE}")
        if assertion_type != self.CLIENT_ASSERTION_TYPE:
            raise InvalidRequestError(description=f"client_assertion_type must be {self.CLIENT_ASSERTION_TYPE}")
        if not assertion:
            raise InvalidRequestError(description="client_assertion is required")
        try:
            header, claims = self.extract_assertion(assertion)
        except InvalidClientError:
            self.server.attempt.notes["malformed"] = True
            raise InvalidClientError(description="The client_assertion is not a signed JWT (a compact JWS whose "
                                                 "payload is a JSON object)") from None
        self._check_header(header)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidClientError(description="The assertion needs a 'sub' claim: the client id")
        given = form.get("client_id")
        if given is not None and given != sub:
            raise InvalidClientError(description="The client_id parameter differs from the assertion's 'sub'")
        client = query_client(sub)
        if not client:
            raise InvalidClientError(description=UNAUTHENTICATED)
        request.client = client
        self.process_assertion_claims(assertion, self.resolve_client_public_key(client))
        return self.authenticate_client(client)

    def _check_header(self, header: dict) -> None:
        """The assertion's algorithm and key id: checked before the client is looked up (same answer for all)."""
        settings = self.server.service.settings
        alg = header.get("alg")
        if alg not in settings.assertion_algorithms:
            raise InvalidClientError(description=f"The assertion's algorithm '{alg}' is not accepted; use one of "
                                                 f"{', '.join(settings.assertion_algorithms)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidClientError(description="The assertion's header has no 'kid'")

    def resolve_client_public_key(self, client: OAuthClient) -> KeySet:
        self._client = client
        return self._keys(refresh=False)

    def _keys(self, refresh: bool) -> KeySet:
        assert self._client is not None
        try:
            return from_thread.run(self.server.service.client_keys, self._client.record, refresh)
        except JwksFetchError as exc:
            raise InvalidClientError(description=f"The client's keys cannot be fetched: {exc}") from None

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict:
        header = jws.extract_compact(assertion.encode()).headers()
        alg, kid = header["alg"], header["kid"]  # checked by _check_header
        jku = header.get("jku")
        if jku is not None and (self._client is None or jku != self._client.record.jwks_url):
            # SMART: a jku must be the JWKS URL registered for the client; it is never fetched as given
            raise InvalidClientError(description=UNAUTHENTICATED)
        key = self._key(kid, refresh=False)
        if key is None and self._client is not None and self._client.record.jwks_url:
            key = self._key(kid, refresh=True)
        if key is None:
            raise InvalidClientError(description=UNAUTHENTICATED)
        try:
            decoded = jwt.decode(assertion, key, algorithms=[alg])
        except JoseError:
            raise InvalidClientError(description=UNAUTHENTICATED) from None
        self.verify_claims(decoded.claims)
        return decoded.claims

    def _key(self, kid: str, refresh: bool):  # noqa: ANN202
        for key in self._keys(refresh).keys:
            if key.kid == kid:
                return key
        return None

    def verify_claims(self, claims: Any) -> None:
        settings = self.server.service.settings
        exp = claims.get("exp")
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise InvalidClientError(description="The assertion needs a numeric 'exp'")
        if exp > time.time() + settings.assertion_max_seconds + settings.clock_skew_seconds:
            raise InvalidClientError(description=f"The assertion's 'exp' is more than "
                                                 f"{settings.assertion_max_seconds} seconds ahead")
        jti = claims.get("jti")
        if jti is not None and (not isinstance(jti, str) or not jti or len(jti) > 255 or not jti.isprintable()):
            raise InvalidClientError(description="The assertion's 'jti' must be 1 to 255 printable characters")
        super().verify_claims(claims)

    def validate_jti(self, claims: Any, jti: str) -> bool:
        expires = datetime.fromtimestamp(int(claims["exp"]) + self.server.service.settings.clock_skew_seconds,
                                         timezone.utc)
        return from_thread.run(self.server.service.registry.remember_jti, str(claims["sub"]), jti, expires)
