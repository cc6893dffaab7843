"""Signatures on notifications: a JWS (ES256, the exchange's current key) with a detached payload, sent in the
`X-Exchange-Signature` header as `header..signature`. A receiver re-inserts base64url(body) between the dots and
verifies against the exchange's JWKS (`/.well-known/jwks.json`), so it knows the notification came from the
exchange and was not altered."""
from __future__ import annotations

import base64

from joserfc import jws
from joserfc.errors import JoseError

from exchange.keys import KeyStore, key_set

SIGNATURE_HEADER = "X-Exchange-Signature"


async def sign(keys: KeyStore, body: bytes) -> str:
    key = await keys.current()
    token = jws.serialize_compact({"alg": key.alg, "kid": key.kid, "typ": "JOSE"}, body, key.key,
                                  algorithms=[key.alg])
    header, _, signature = token.split(".")
    return f"{header}..{signature}"


def verify(signature: str, body: bytes, jwks: dict) -> bool:
    """Whether `signature` (detached compact JWS) signs `body` under one of the keys in `jwks`."""
    header, _, rest = signature.partition("..")
    if not header or not rest or "." in rest:
        return False
    payload = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    try:
        jws.deserialize_compact(f"{header}.{payload}.{rest}", key_set(jwks), algorithms=["ES256"])
    except (JoseError, ValueError):
        return False
    return True
