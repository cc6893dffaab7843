"""The OAuth 2 authorisation server, built on authlib: client credentials with a private_key_jwt assertion
(RFC 7523, SMART Backend Services), token introspection (RFC 7662) and revocation (RFC 7009).

authlib's server is synchronous: the HTTP layer runs it in a worker thread, and the few things it needs from the
async side (the client record, the partner's JWK Set, the used-jti check, revocations) come back through
`anyio.from_thread.run`. One server object is built per request, so its per-request state is never shared.

What authlib leaves to us, done here: RS384/ES384 accepted explicitly (none and HMAC never), `kid` required and
looked up (one refetch of a JWKS URL on an unknown kid), `exp` at most `assertion_max_seconds` ahead, `jti` kept in
the database under a unique key, 300 s tokens, granted scopes = requested ∩ registered.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from anyio import from_thread
from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.errors import (InvalidClientError, InvalidRequestError, InvalidScopeError,
                                          UnsupportedGrantTypeError)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from exchange.auth import scopes, tokens
from exchange.auth.clients import ClientRecord
from exchange.auth.jwks import JwksFetchError
from exchange.keys import SigningKey

if TYPE_CHECKING:
    from exchange.auth.service import AuthService

AUTH_METHOD = "client_assertion_jwt"  # authlib's name for what SMART and RFC 8414 call private_key_jwt
# One answer for every failure that would otherwise tell an unauthenticated caller whether a client exists, is
# enabled or confirmed, or has a key with that kid (issue 11): unknown, disabled, pending, unknown kid, bad signature.
UNAUTHENTICATED = "The client assertion could not be verified for this client"
SINGLE_PARAMETERS = ("grant_type", "scope", "client_assertion", "client_assertion_type", "client_id", "token",
                     "token_type_hint")


class FormRequest(OAuth2Request):
    """An OAuth 2 request from an already-read form body (authlib has no FastAPI adapter)."""

    def __init__(self, uri: str, form: dict[str, str], headers: dict[str, str]):
        super().__init__("POST", uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


@dataclass
class Attempt:
    """What one request to the authorisation server found out, for the audit log and the caller."""
    client: ClientRecord | None = None
    issued: tokens.AccessClaims | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class OAuthClient(ClientMixin):
    def __init__(self, record: ClientRecord):
        self.record = record

    def get_client_id(self) -> str:
        return self.record.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(scopes.grant(scope or "", self.record.scopes))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == AUTH_METHOD

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class PrivateKeyJwt(JWTBearerClientAssertion):
    """RFC 7523 client authentication with the SMART Backend Services checks authlib does not make."""

    def __init__(self, server: "ExchangeAuthServer", audiences: list[str]):
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


class SmartClientCredentials(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [AUTH_METHOD]

    def validate_requested_scope(self) -> None:
        requested = self.request.payload.scope
        if not requested:
            raise InvalidScopeError(description="The 'scope' parameter is required, e.g. scope=system/*.rs")
        granted = self.request.client.get_allowed_scope(requested)
        if not granted:
            raise InvalidScopeError(description="None of the requested scopes is registered for this client")
        self.request.scope = granted

    def create_token_response(self):  # noqa: ANN201
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


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


class _TokenLookup:
    server: "ExchangeAuthServer"
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


class Introspection(_TokenLookup, IntrospectionEndpoint):
    def check_permission(self, token: KnownToken, client: OAuthClient, request: OAuth2Request) -> bool:
        return token.check_client(client)  # a client introspects its own tokens only

    def introspect_token(self, token: KnownToken) -> dict:
        return token.claims.introspection(self.server.service.settings)


class Revocation(_TokenLookup, RevocationEndpoint):
    def revoke_token(self, token: KnownToken, request: OAuth2Request) -> None:
        expires = datetime.fromtimestamp(token.claims.expires_at, timezone.utc)
        from_thread.run(self.server.service.registry.revoke_token, token.claims.jti, token.claims.client_id,
                        expires)
        self.server.attempt.notes["revoked"] = token.claims.jti


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


def duplicate_parameter(pairs: list[tuple[str, str]]) -> str | None:
    """RFC 6749 §3.1/3.2: request parameters must not be included more than once."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen and key in SINGLE_PARAMETERS:
            return key
        seen.add(key)
    return None


def invalid_request(description: str) -> tuple[int, dict, list]:
    return InvalidRequestError(description=description)(None)
