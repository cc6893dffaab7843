"""Opaque, expiring page tokens: paging links of a search on identifying parameters carry no searched value.

A search by name, identifier, birth date, telecom or address (`definitions.IDENTIFYING_SEARCH_PARAMS`) gets
`self`/`first`/`next`/`prev` links of the form `[base]/[type]?_page_token=T&_count=N&_offset=M`, where T is the
search's parameters sealed with AES-GCM (authenticated encryption: unreadable and unforgeable outside the
exchange) together with the caller's client id and an expiry (`Settings.search_page_token_seconds`). The key is
derived (HKDF) from the exchange's signing key, so every process of a deployment accepts every other's tokens and
rotating the signing key retires them. A token is good only for the client that ran the search, only until it
expires, and only for the resource type it was made for; otherwise 400, never a hint of what it held.
"""
from __future__ import annotations

import base64
import os
import time

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from exchange.errors import BadRequest

PARAM = "_page_token"
_INFO = b"gbv-exchange search page token v1"


async def page_key(keys) -> bytes:  # noqa: ANN001 - exchange.keys.KeyStore
    """The AES-256 key for page tokens, derived from the private part of the exchange's current signing key."""
    d = (await keys.current()).key.as_dict(private=True)["d"]
    secret = base64.urlsafe_b64decode(d + "=" * (-len(d) % 4))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)


def seal(key: bytes, resource_type: str, params: list[tuple[str, str]], client_id: str | None, lifetime: float
         ) -> str:
    payload = orjson.dumps({"t": resource_type, "q": params, "c": client_id, "e": int(time.time() + lifetime)})
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, payload, resource_type.encode())
    return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()


def unseal(key: bytes, token: str, resource_type: str, client_id: str | None) -> list[tuple[str, str]]:
    """The parameters sealed in `token`; 400 if it is not one of ours, expired, or another client's."""
    refused = BadRequest(f"{PARAM} is unknown or expired: run the search again", expression=PARAM)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = orjson.loads(AESGCM(key).decrypt(raw[:12], raw[12:], resource_type.encode()))
    except (ValueError, InvalidTag, orjson.JSONDecodeError):
        raise refused from None
    if payload.get("t") != resource_type or payload.get("c") != client_id or payload.get("e", 0) < time.time():
        raise refused
    return [(str(k), str(v)) for k, v in payload["q"]]
