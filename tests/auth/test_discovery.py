"""What a SMART Backend Services client reads before connecting: discovery, JWKS, CapabilityStatement security."""
from __future__ import annotations

import jwt as pyjwt

from tests.fhir_checks import assert_valid


async def test_smart_configuration(root):
    r = await root.get("/fhir/.well-known/smart-configuration")
    assert r.status_code == 200
    doc = r.json()
    assert doc["token_endpoint"] == "http://127.0.0.1:8080/auth/token"
    assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert {"RS384", "ES384"} <= set(doc["token_endpoint_auth_signing_alg_values_supported"])
    assert not {"none", "HS256"} & set(doc["token_endpoint_auth_signing_alg_values_supported"])
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert "client-confidential-asymmetric" in doc["capabilities"]
    assert "system/Task.cruds" in doc["scopes_supported"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["introspection_endpoint"] == "http://127.0.0.1:8080/auth/introspect"
    assert doc["revocation_endpoint"] == "http://127.0.0.1:8080/auth/revoke"
    assert doc["jwks_uri"] == "http://127.0.0.1:8080/.well-known/jwks.json"


async def test_jwks_publishes_public_keys_only(root):
    jwks = (await root.get("/.well-known/jwks.json")).json()
    assert jwks["keys"]
    for key in jwks["keys"]:
        assert key["kid"] and key["alg"] == "ES256" and key["use"] == "sig"
        assert "d" not in key
        pyjwt.algorithms.ECAlgorithm.from_jwk(key)


async def test_capability_statement_names_the_security_service(root):
    statement = (await root.get("/fhir/metadata")).json()
    assert_valid(statement)
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert security["extension"][0]["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert uris == {"token": "http://127.0.0.1:8080/auth/token", "introspect": "http://127.0.0.1:8080/auth/introspect",
                    "revoke": "http://127.0.0.1:8080/auth/revoke"}
