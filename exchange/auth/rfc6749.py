"""OAuth 2 (RFC 6749) as the exchange speaks it, on authlib: a request from an already-read form, the client as
authlib sees it, the client credentials grant (the only grant; granted scopes = requested ∩ registered), and the
rule that a parameter comes once (§3.1, §3.2); and what every mechanism reads of the one request's server
(`ServerState`, which `exchange.auth.server.ExchangeAuthServer` is)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload

from exchange.auth import scopes, tokens
from exchange.auth.clients import ClientRecord

if TYPE_CHECKING:
    from exchange.auth.service import AuthService

AUTH_METHOD = "client_assertion_jwt"  # authlib's name for what SMART and RFC 8414 call private_key_jwt
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


class ServerState(Protocol):
    """What the mechanisms (rfc7523, rfc7662, rfc7009) read of the one request's authorisation server."""
    service: "AuthService"
    public_jwks: dict
    attempt: Attempt


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
