#!/usr/bin/env python3
"""Get an access token from the exchange as any SMART Backend Services client does, and optionally use it.

    .venv/bin/python scripts/get_token.py --client-id demo-hotline-1 --key var/demo-clients/demo-hotline-1.jwk.json
    .venv/bin/python scripts/get_token.py --client-id ... --key ... --get Organization

1. read the discovery document (GET {base}/fhir/.well-known/smart-configuration) for the token endpoint;
2. sign a client assertion (iss = sub = client id, aud = token endpoint, exp = now + 4 min, a fresh jti) with the
   client's private key (ES384 for an EC P-384 key, RS384 for RSA);
3. POST grant_type=client_credentials with the assertion; print the access token (or, with --get, the FHIR
   response of GET {base}/fhir/{path} made with it).
Needs only httpx and joserfc.
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
from joserfc.jwk import ECKey, RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def load_key(path: Path):  # noqa: ANN201
    data = json.loads(path.read_text())
    if data.get("kty") == "EC":
        return ECKey.import_key(data), {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[data["crv"]]
    if data.get("kty") == "RSA":
        return RSAKey.import_key(data), "RS384"
    raise SystemExit(f"{path}: expected a private EC or RSA JWK")


def get_token(base_url: str, client_id: str, key_file: Path, scope: str) -> str:
    config = httpx.get(f"{base_url}/fhir/.well-known/smart-configuration", timeout=10)
    config.raise_for_status()
    token_url = config.json()["token_endpoint"]
    key, alg = load_key(key_file)
    now = int(time.time())
    assertion = jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"},
                           {"iss": client_id, "sub": client_id, "aud": token_url, "iat": now, "exp": now + 240,
                            "jti": uuid.uuid4().hex}, key, algorithms=[alg])
    r = httpx.post(token_url, data={"grant_type": "client_credentials", "scope": scope,
                                    "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion},
                   timeout=10)
    if r.status_code != 200:
        raise SystemExit(f"token request refused ({r.status_code}): {r.text}")
    return r.json()["access_token"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080", help="the exchange (without /fhir)")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--key", required=True, type=Path, help="the client's private JWK (JSON file)")
    parser.add_argument("--scope", default="system/*.rs", help="SMART scopes to ask for")
    parser.add_argument("--get", metavar="PATH", help="then GET {base}/fhir/PATH with the token and print it")
    args = parser.parse_args()
    base = args.base_url.rstrip("/")
    token = get_token(base, args.client_id, args.key, args.scope)
    if not args.get:
        print(token)
        return
    r = httpx.get(f"{base}/fhir/{args.get.lstrip('/')}", headers={"Authorization": f"Bearer {token}",
                                                                  "Accept": "application/fhir+json"}, timeout=10)
    print(r.text)
    sys.exit(0 if r.status_code < 400 else 1)


if __name__ == "__main__":
    main()
