"""The token endpoint as a SMART Backend Services client meets it: what gets a token, and every refusal."""
from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.auth.keys import TOKEN_URL, assertion, ec_key, rsa_key, token_form


@pytest.fixture
async def org(make_org):
    return await make_org("Amal Hotline", kind="hotline")


async def _client(registry, org, key, scopes="system/*.rs system/Task.cruds") -> str:
    return (await registry.add(org, "partner", scopes, jwks=key.jwks)).client_id


def _oauth_error(r, status: int, error: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error, body
    assert r.headers["cache-control"] == "no-store"
    return body


@pytest.mark.parametrize("make_key", [rsa_key, ec_key], ids=["RS384", "ES384"])
async def test_valid_assertion_gets_a_short_lived_jwt_access_token(root, registry, org, make_key, exchange):
    key = make_key()
    client_id = await _client(registry, org, key)
    r = await root.post("/auth/token", data=token_form(assertion(client_id, key), scope="system/Task.rs"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "system/Task.rs"
    assert r.headers["cache-control"] == "no-store"
    jwks = (await root.get("/.well-known/jwks.json")).json()
    header = pyjwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    public = pyjwt.algorithms.ECAlgorithm.from_jwk(json.dumps(
        next(k for k in jwks["keys"] if k["kid"] == header["kid"])))
    claims = pyjwt.decode(body["access_token"], public, algorithms=["ES256"], audience="http://127.0.0.1:8080/fhir")
    assert claims["sub"] == claims["client_id"] == client_id
    assert claims["iss"] == "http://127.0.0.1:8080"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["scope"] == "system/Task.rs"


async def _refused(root, registry, org, status=401, error="invalid_client", **kwargs):
    key = kwargs.pop("key", None) or ec_key()
    client_id = await _client(registry, org, key)
    signer = kwargs.pop("signer", key)
    form = token_form(assertion(client_id, signer, **kwargs))
    return _oauth_error(await root.post("/auth/token", data=form), status, error)


async def test_wrong_audience_is_refused(root, registry, org):
    body = await _refused(root, registry, org, aud="https://other.example.org/token")
    assert "aud" in body["error_description"]


async def test_expired_assertion_is_refused(root, registry, org):
    await _refused(root, registry, org, exp_in=-60)


async def test_assertion_valid_for_more_than_five_minutes_is_refused(root, registry, org):
    body = await _refused(root, registry, org, exp_in=360)
    assert "300 seconds" in body["error_description"]


async def test_unknown_kid_is_refused(root, registry, org):
    key = ec_key()
    stranger = ec_key()
    body = await _refused(root, registry, org, key=key, signer=stranger)
    assert stranger.kid not in body["error_description"]  # the same answer as an unknown client (test_token_refusals)


async def test_signature_by_an_unregistered_key_with_a_registered_kid_is_refused(root, registry, org):
    key = ec_key()
    impostor = ec_key(kid=key.kid)
    await _refused(root, registry, org, key=key, signer=impostor)


async def test_assertion_without_kid_is_refused(root, registry, org):
    key = ec_key()
    client_id = await _client(registry, org, key)
    now = int(time.time())
    unsigned_kid = pyjwt.encode({"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 60,
                                 "jti": uuid.uuid4().hex}, key.private, algorithm="ES384", headers={"typ": "JWT"})
    _oauth_error(await root.post("/auth/token", data=token_form(unsigned_kid)), 401, "invalid_client")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_alg_none_is_refused(root, registry, org):
    key = ec_key()
    client_id = await _client(registry, org, key)
    now = int(time.time())
    token = _b64({"alg": "none", "kid": key.kid, "typ": "JWT"}) + "." + _b64(
        {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 60, "jti": uuid.uuid4().hex}) + "."
    _oauth_error(await root.post("/auth/token", data=token_form(token)), 401, "invalid_client")


async def test_hs256_signed_with_the_public_key_is_refused(root, registry, org):
    import hashlib
    import hmac

    key = rsa_key()
    client_id = await _client(registry, org, key)
    pem = key.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    signing_input = _b64({"alg": "HS256", "kid": key.kid, "typ": "JWT"}) + "." + _b64(
        {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 60, "jti": uuid.uuid4().hex})
    signature = base64.urlsafe_b64encode(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()).rstrip(b"=")
    token = signing_input + "." + signature.decode()
    body = _oauth_error(await root.post("/auth/token", data=token_form(token)), 401, "invalid_client")
    assert "HS256" in body["error_description"]


async def test_iss_differing_from_sub_is_refused(root, registry, org):
    await _refused(root, registry, org, iss="someone-else")


async def test_unknown_client_is_refused(root):
    key = ec_key()
    _oauth_error(await root.post("/auth/token", data=token_form(assertion("no-such-client", key))), 401,
                 "invalid_client")


async def test_disabled_client_is_refused(root, registry, org):
    key = ec_key()
    client_id = await _client(registry, org, key)
    await registry.set_active(client_id, False)
    body = _oauth_error(await root.post("/auth/token", data=token_form(assertion(client_id, key))), 401,
                        "invalid_client")
    assert "disabled" not in body["error_description"]  # the same answer as an unknown client


async def test_reused_jti_is_refused(root, registry, org):
    key = ec_key()
    client_id = await _client(registry, org, key)
    once = assertion(client_id, key)
    assert (await root.post("/auth/token", data=token_form(once))).status_code == 200
    body = _oauth_error(await root.post("/auth/token", data=token_form(once)), 401, "invalid_client")
    assert "JWT ID" in body["error_description"]


async def test_concurrent_replays_get_exactly_one_token(root, registry, org):
    key = ec_key()
    client_id = await _client(registry, org, key)
    once = token_form(assertion(client_id, key))
    responses = await asyncio.gather(*(root.post("/auth/token", data=once) for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [200, 401, 401, 401, 401, 401]


async def test_a_second_worker_refuses_a_replay(root, registry, org, settings):
    """Two exchanges (two worker processes) on one database share the used-jti table."""
    import httpx

    from exchange.main import create_app
    from exchange.main import build

    key = ec_key()
    client_id = await _client(registry, org, key)
    once = token_form(assertion(client_id, key))
    assert (await root.post("/auth/token", data=once)).status_code == 200
    other = create_app(settings, build(settings))
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=("127.0.0.1", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            _oauth_error(await http.post("/auth/token", data=once), 401, "invalid_client")


async def test_scope_is_narrowed_to_the_registration(root, registry, org):
    key = ec_key()
    client_id = await _client(registry, org, key, scopes="system/Task.rs system/Organization.rs")
    r = await root.post("/auth/token", data=token_form(assertion(client_id, key),
                                                        scope="system/Task.cruds system/Patient.rs"))
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "system/Task.rs"


async def test_scope_outside_the_registration_is_refused(root, registry, org):
    key = ec_key()
    client_id = await _client(registry, org, key, scopes="system/Task.rs")
    r = await root.post("/auth/token", data=token_form(assertion(client_id, key), scope="system/Patient.rs"))
    _oauth_error(r, 400, "invalid_scope")


async def test_missing_scope_is_refused(root, registry, org):
    key = ec_key()
    client_id = await _client(registry, org, key)
    _oauth_error(await root.post("/auth/token", data=token_form(assertion(client_id, key), scope=None)), 400,
                 "invalid_scope")


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "refresh_token",
                                        "urn:ietf:params:oauth:grant-type:jwt-bearer"])
async def test_other_grant_types_are_refused(root, registry, org, grant_type):
    key = ec_key()
    client_id = await _client(registry, org, key)
    form = token_form(assertion(client_id, key), grant_type=grant_type)
    _oauth_error(await root.post("/auth/token", data=form), 400, "unsupported_grant_type")


async def test_missing_or_foreign_assertion_type_is_refused(root, registry, org):
    key = ec_key()
    client_id = await _client(registry, org, key)
    form = token_form(assertion(client_id, key), client_assertion_type="urn:example:other")
    _oauth_error(await root.post("/auth/token", data=form), 400, "invalid_request")  # tests/auth/test_challenges.py
    _oauth_error(await root.post("/auth/token", data={"grant_type": "client_credentials", "scope": "system/*.rs"}),
                 401, "invalid_client")


async def test_garbage_assertion_is_refused(root):
    _oauth_error(await root.post("/auth/token", data=token_form("not.a.jwt")), 400, "invalid_client")


async def test_repeated_parameter_and_wrong_content_type_are_invalid_requests(root, registry, org):
    key = ec_key()
    client_id = await _client(registry, org, key)
    form = token_form(assertion(client_id, key))
    body = "&".join(f"{k}={v}" for k, v in form.items()) + "&scope=system/Task.rs"
    r = await root.post("/auth/token", content=body,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    _oauth_error(r, 400, "invalid_request")
    _oauth_error(await root.post("/auth/token", json=form), 400, "invalid_request")
    _oauth_error(await root.post("/auth/token", content=b"x" * 20000,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}), 400,
                 "invalid_request")


async def test_token_events_reach_the_hooks_without_the_assertion(root, registry, org, exchange):
    """The audit log sees an issued token (in a unit, as the client) and each refusal; never the assertion."""
    seen: list = []

    class Recorder:
        async def before_commit(self, unit):  # noqa: ANN001, ANN202
            seen.append(("commit", unit.ctx, [e.interaction for e in unit.events], None))

        async def on_failure(self, conn, failure):  # noqa: ANN001, ANN202
            seen.append(("failure", failure.ctx, [failure.interaction], failure.error))

    exchange.hooks.append(Recorder())
    key = ec_key()
    client_id = await _client(registry, org, key)
    good = assertion(client_id, key)
    assert (await root.post("/auth/token", data=token_form(good))).status_code == 200
    bad = assertion(client_id, key, aud="https://elsewhere.example/token")
    assert (await root.post("/auth/token", data=token_form(bad))).status_code == 401
    assert (await root.post("/auth/token", data=token_form(assertion("nobody", key)))).status_code == 401
    kinds = [(kind, ctx.client_id, ctx.role, interactions) for kind, ctx, interactions, _ in seen]
    assert kinds == [("commit", client_id, "partner", ["token"]), ("failure", client_id, "partner", ["token"]),
                     ("failure", None, "anonymous", ["token"])]
    assert seen[0][1].organization_id == org and seen[0][1].token_id
    for _, _, _, error in seen[1:]:
        assert error.status == 401 and "invalid_client" in error.diagnostics
        assert good not in error.diagnostics and bad not in error.diagnostics
        assert bad.split(".")[2] not in error.diagnostics


class TestPublicHttpBaseUrl:
    """Outside loopback development OAuth 2 needs https: a plain-http public URL makes the token endpoint refuse."""

    @pytest.fixture
    def settings(self, database_url, tmp_path):
        from exchange.settings import Settings

        return Settings(database_url=database_url, state_dir=tmp_path / "state",
                        public_base_url="http://exchange.example.org")

    async def test_token_endpoint_refuses_plain_http(self, root, registry, org):
        key = ec_key()
        client_id = await _client(registry, org, key)
        form = token_form(assertion(client_id, key, aud="http://exchange.example.org/auth/token"))
        _oauth_error(await root.post("/auth/token", data=form), 400, "insecure_transport")


async def test_v1_scopes_are_accepted_and_mapped_to_v2(root, registry, org):
    key = ec_key()
    client_id = await _client(registry, org, key, scopes="system/*.read system/Task.write")
    r = await root.post("/auth/token", data=token_form(assertion(client_id, key),
                                                        scope="system/Task.read system/Task.write"))
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "system/Task.cruds"


async def test_a_jku_other_than_the_registered_url_is_refused_and_never_fetched(root, registry, org):
    key = ec_key()
    client_id = await _client(registry, org, key)
    form = token_form(assertion(client_id, key, headers={"jku": "https://attacker.example/jwks.json"}))
    _oauth_error(await root.post("/auth/token", data=form), 401, "invalid_client")


def test_settings_refuse_symmetric_or_unsigned_assertion_algorithms():
    from pydantic import ValidationError

    from exchange.settings import Settings

    for bad in (["RS384", "HS256"], ["none"]):
        with pytest.raises(ValidationError):
            Settings(assertion_algorithms=bad)
