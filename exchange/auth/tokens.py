"""Access tokens: short-lived JWTs in the RFC 9068 shape, signed with the exchange's own key, verified locally.

`iss` is the exchange's base URL, `aud` its FHIR base, `sub` and `client_id` the client, `scope` the granted SMART
scopes; `organization` and `role` are informational (the bearer check reads the client's current state).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from exchange.keys import SIGNING_ALG, SigningKey
from exchange.settings import Settings

TOKEN_TYPE = "at+jwt"


class InvalidToken(Exception):
    """The token is not one of ours, or no longer valid. The message is safe to show to the caller."""


class UnknownKey(InvalidToken):
    """Signed with a key id this process does not know (yet): the exchange's keys may have been rotated."""


@dataclass(frozen=True)
class AccessClaims:
    jti: str
    client_id: str
    scope: str
    issued_at: int
    expires_at: int
    organization_id: str | None
    role: str | None

    def introspection(self, settings: Settings) -> dict:
        return {"active": True, "client_id": self.client_id, "sub": self.client_id, "scope": self.scope,
                "token_type": "Bearer", "iat": self.issued_at, "exp": self.expires_at, "jti": self.jti,
                "iss": settings.base_url, "aud": settings.fhir_base_url}


def issue(signing: SigningKey, settings: Settings, client_id: str, organization_id: str, role: str, scope: str,
          now: int | None = None) -> tuple[str, AccessClaims]:
    now = int(now if now is not None else time.time())
    claims = AccessClaims(uuid.uuid4().hex, client_id, scope, now, now + settings.access_token_seconds,
                          organization_id, role)
    payload = {"iss": settings.base_url, "aud": settings.fhir_base_url, "sub": client_id, "client_id": client_id,
               "scope": scope, "iat": claims.issued_at, "exp": claims.expires_at, "jti": claims.jti,
               "organization": organization_id, "role": role}
    header = {"alg": signing.alg, "kid": signing.kid, "typ": TOKEN_TYPE}
    return jwt.encode(header, payload, signing.key, algorithms=[signing.alg]), claims


_KEY_SETS: dict[int, tuple[dict, KeySet]] = {}


def _key_set(public_jwks: dict) -> KeySet:
    """The imported KeySet of the exchange's (cached) JWKS dict: imported once per dict, not per request."""
    cached = _KEY_SETS.get(id(public_jwks))
    if cached is None or cached[0] is not public_jwks:
        _KEY_SETS.clear()
        cached = (public_jwks, KeySet.import_key_set(public_jwks))
        _KEY_SETS[id(public_jwks)] = cached
    return cached[1]


def key_id(token: str) -> str | None:
    """The `kid` of the token's (unverified) header; InvalidToken if it is not a compact JWS at all."""
    if token.count(".") != 2 or len(token) > 8192:
        raise InvalidToken("The access token is malformed")
    try:
        return jws.extract_compact(token.encode()).headers().get("kid")
    except (JoseError, ValueError, TypeError):
        raise InvalidToken("The access token is malformed") from None


def verify(token: str, public_jwks: dict, settings: Settings, now: int | None = None) -> AccessClaims:
    """Check signature, type, issuer, audience and expiry; raise InvalidToken with a reason otherwise."""
    kid = key_id(token)
    if kid not in {key.get("kid") for key in public_jwks.get("keys", [])}:
        raise UnknownKey("The access token is not signed by a key of this exchange")
    try:
        decoded = jwt.decode(token, _key_set(public_jwks), algorithms=[SIGNING_ALG])
    except (JoseError, ValueError, TypeError):
        raise InvalidToken("The access token is malformed or its signature is not the exchange's") from None
    if decoded.header.get("typ") != TOKEN_TYPE:
        raise InvalidToken("The bearer token is not an access token of this exchange")
    registry = jwt.JWTClaimsRegistry(
        now=now, leeway=settings.clock_skew_seconds,
        iss={"essential": True, "value": settings.base_url},
        aud={"essential": True, "value": settings.fhir_base_url},
        exp={"essential": True}, jti={"essential": True}, client_id={"essential": True})
    try:
        registry.validate(decoded.claims)
    except JoseError as exc:
        if getattr(exc, "error", "") == "expired_token":
            raise InvalidToken("The access token has expired") from None
        raise InvalidToken(f"The access token is not valid here ({exc.error})") from None
    c = decoded.claims
    if not isinstance(c.get("scope"), str):
        raise InvalidToken("The access token carries no scope")
    return AccessClaims(str(c["jti"]), str(c["client_id"]), c["scope"], int(c.get("iat") or 0), int(c["exp"]),
                        c.get("organization"), c.get("role"))
