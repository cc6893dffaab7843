"""A partner as the kit plays it: its client id and private key, a SMART Backend Services token, its organisation."""
from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FHIR_JSON = "application/fhir+json"


def load_key(path: str | Path) -> tuple[ECKey | RSAKey, str]:
    data = json.loads(Path(path).read_text())
    if data.get("kty") == "EC":
        return ECKey.import_key(data), {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[data["crv"]]
    if data.get("kty") == "RSA":
        return RSAKey.import_key(data), "RS384"
    raise SystemExit(f"{path}: expected a private EC or RSA JWK")


def assertion(client_id: str, key, alg: str, audience: str, lifetime: int = 240, **overrides) -> str:  # noqa: ANN001
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + lifetime,
              "jti": uuid.uuid4().hex, **overrides}
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


@dataclass
class Party:
    """One organisation's client. `http` sends FHIR requests to `{base}/fhir` with its bearer token."""
    name: str
    client_id: str
    key: ECKey | RSAKey
    alg: str
    token: str = ""
    organization_id: str | None = None
    http: httpx.Client = field(default=None, repr=False)  # type: ignore[assignment]

    def sign(self, audience: str, **overrides) -> str:
        return assertion(self.client_id, self.key, self.alg, audience, **overrides)

    def token_request(self, token_url: str, scope: str = "system/*.cruds", **form) -> httpx.Response:
        data = {"grant_type": "client_credentials", "scope": scope, "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.sign(token_url)}
        data.update(form)
        return httpx.post(token_url, data={k: v for k, v in data.items() if v is not None}, timeout=20)

    def connect(self, base_url: str, token_url: str, scope: str = "system/*.cruds") -> httpx.Response:
        r = self.token_request(token_url, scope)
        if r.status_code == 200:
            self.token = r.json()["access_token"]
            self.organization_id = _claim(self.token, "organization")
            self.http = httpx.Client(base_url=f"{base_url}/fhir", timeout=30, headers={
                "Authorization": f"Bearer {self.token}", "Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
        return r


def _claim(token: str, name: str) -> str | None:
    """A claim of the access token, read without verifying it (informational: the kit needs its organisation id)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get(name)
    except (IndexError, ValueError):
        return None
