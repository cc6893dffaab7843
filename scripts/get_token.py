#!/usr/bin/env python3
"""Get an access token from the exchange as any SMART Backend Services client does, and optionally use it.

    python scripts/get_token.py --client-id demo-hotline-1 --key var/demo-clients/demo-hotline-1.jwk.json
    python scripts/get_token.py --client-id ... --key ... --get Organization

1. read the discovery document (GET {base}/fhir/.well-known/smart-configuration) for the token endpoint;
2. sign a client assertion (iss = sub = client id, aud = token endpoint, exp = now + 4 min, a fresh jti) with the
   client's private key (ES384 for an EC P-384 key, RS384 for RSA);
3. POST grant_type=client_credentials with the assertion; print the access token (or, with --get, the FHIR
   response of GET {base}/fhir/{path} made with it).
Needs only httpx and joserfc. Every failure is one `error:` line saying what to do.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Refused(Exception):
    """What went wrong, in one line a person can act on."""


def load_key(path: Path):  # noqa: ANN201
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise Refused(f"no key file at {path} (after `make run` the demo clients' keys are in "
                      "var/demo-clients/)") from None
    except (OSError, ValueError) as exc:
        raise Refused(f"cannot read the key in {path}: {exc}") from None
    try:
        if data.get("kty") == "EC":
            return ECKey.import_key(data), {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[data["crv"]]
        if data.get("kty") == "RSA":
            return RSAKey.import_key(data), "RS384"
    except (JoseError, KeyError, ValueError, TypeError):
        pass
    raise Refused(f"{path} does not hold a private EC or RSA JWK")


def _get(url: str, **kwargs) -> httpx.Response:  # noqa: ANN003
    try:
        return httpx.get(url, timeout=10, **kwargs)
    except httpx.TransportError as exc:
        raise Refused(f"no exchange answers at {url.split('/fhir')[0]} ({type(exc).__name__}): is it running? "
                      "(`make run` starts one on http://127.0.0.1:8080)") from None


def get_token(base_url: str, client_id: str, key_file: Path, scope: str) -> str:
    key, alg = load_key(key_file)
    config = _get(f"{base_url}/fhir/.well-known/smart-configuration")
    if config.status_code != 200:
        raise Refused(f"{base_url}/fhir/.well-known/smart-configuration answered {config.status_code}: is "
                      f"{base_url} the exchange's base URL?")
    token_url = config.json()["token_endpoint"]
    now = int(time.time())
    assertion = jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"},
                           {"iss": client_id, "sub": client_id, "aud": token_url, "iat": now, "exp": now + 240,
                            "jti": uuid.uuid4().hex}, key, algorithms=[alg])
    try:
        r = httpx.post(token_url, data={"grant_type": "client_credentials", "scope": scope,
                                        "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion},
                       timeout=10)
    except httpx.TransportError as exc:
        raise Refused(f"the token endpoint {token_url} does not answer ({type(exc).__name__})") from None
    if r.status_code != 200:
        try:
            answer = r.json()
            reason = f"{answer.get('error')}: {answer.get('error_description', '')}".rstrip(": ")
        except ValueError:
            reason = r.text[:200]
        raise Refused(f"the exchange refused a token for {client_id} ({r.status_code} {reason})")
    return r.json()["access_token"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080", help="the exchange's root (without /fhir)")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--key", required=True, type=Path, help="the client's private JWK (JSON file)")
    parser.add_argument("--scope", default="system/*.rs", help="SMART scopes to ask for")
    parser.add_argument("--get", metavar="PATH", help="then GET {base}/fhir/PATH with the token and print it")
    args = parser.parse_args()
    base = args.base_url.rstrip("/")
    try:
        if base.endswith("/fhir"):
            raise Refused(f"--base-url is the exchange's root, without /fhir: use {base.removesuffix('/fhir')}")
        token = get_token(base, args.client_id, args.key, args.scope)
        if not args.get:
            print(token)
            return
        r = _get(f"{base}/fhir/{args.get.lstrip('/')}", headers={"Authorization": f"Bearer {token}",
                                                                 "Accept": "application/fhir+json"})
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(r.text)
    sys.exit(0 if r.status_code < 400 else 1)


if __name__ == "__main__":
    main()
