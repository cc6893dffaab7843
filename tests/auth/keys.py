"""Keys and client assertions made by the tests themselves with PyJWT + cryptography (not the exchange's code)."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_URL = "http://127.0.0.1:8080/auth/token"


@dataclass
class PartnerKey:
    private: object
    alg: str
    kid: str

    @property
    def public_jwk(self) -> dict:
        algorithm = pyjwt.algorithms.RSAAlgorithm if self.alg.startswith(("RS", "PS")) else pyjwt.algorithms.ECAlgorithm
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    @property
    def jwks(self) -> dict:
        return {"keys": [self.public_jwk]}


def rsa_key(kid: str | None = None) -> PartnerKey:
    return PartnerKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS384", kid or uuid.uuid4().hex)


def ec_key(kid: str | None = None) -> PartnerKey:
    return PartnerKey(ec.generate_private_key(ec.SECP384R1()), "ES384", kid or uuid.uuid4().hex)


def assertion(client_id: str, key: PartnerKey, aud: str = TOKEN_URL, exp_in: int = 120, headers: dict | None = None,
              **claims) -> str:
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + exp_in, "iat": now, "jti": uuid.uuid4().hex}
    body.update(claims)
    header = {"kid": key.kid, "typ": "JWT"}
    header.update(headers or {})
    return pyjwt.encode(body, key.private, algorithm=key.alg, headers=header)


def token_form(client_assertion: str, scope: str = "system/*.rs", **extra) -> dict:
    form = {"grant_type": "client_credentials", "scope": scope, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion}
    form.update(extra)
    return {k: v for k, v in form.items() if v is not None}


