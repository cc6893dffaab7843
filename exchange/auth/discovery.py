"""What a standard SMART Backend Services client reads before connecting: `.well-known/smart-configuration` and
the CapabilityStatement's `rest.security` (service SMART-on-FHIR, the oauth-uris extension)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from exchange.fhir.definitions import RESOURCE_TYPES

if TYPE_CHECKING:
    from exchange.auth.service import AuthService
    from exchange.kernel.exchange import Exchange

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def scopes_supported() -> list[str]:
    out = ["system/*.cruds", "system/*.rs"]
    for rtype in (*RESOURCE_TYPES, "AuditEvent"):
        out += [f"system/{rtype}.cruds", f"system/{rtype}.rs"]
    return out


def smart_configuration(service: "AuthService") -> dict:
    """Only what the exchange serves: no authorization endpoint, so no `response_types_supported` either."""
    urls, settings = service.urls, service.settings
    return {
        "issuer": settings.base_url,
        "jwks_uri": urls.jwks,
        "token_endpoint": urls.token,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(settings.assertion_algorithms),
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": scopes_supported(),
        "capabilities": ["client-confidential-asymmetric", "permission-v2", "permission-v1"],
        "code_challenge_methods_supported": ["S256"],  # SMART 2.x: REQUIRED, S256 included, plain never
        "introspection_endpoint": urls.introspection,
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
        "revocation_endpoint": urls.revocation,
        "revocation_endpoint_auth_methods_supported": ["private_key_jwt"],
    }


def contribute_security(statement: dict, exchange: "Exchange") -> None:
    """CapabilityStatement.rest.security: SMART-on-FHIR, with the token, introspection and revocation URLs."""
    from exchange.auth.service import auth_service

    urls = auth_service(exchange).urls
    security = {
        "extension": [{"url": OAUTH_URIS, "extension": [
            {"url": "token", "valueUri": urls.token},
            {"url": "introspect", "valueUri": urls.introspection},
            {"url": "revoke", "valueUri": urls.revocation},
        ]}],
        "cors": False,
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                 "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}],
                     "text": "OAuth 2 client credentials with private_key_jwt (SMART Backend Services)"}],
        "description": "Every interaction except metadata and the SMART discovery document needs a bearer access "
                       "token from the token endpoint (SMART Backend Services, SMART v2 system scopes).",
    }
    for rest in statement.get("rest", []):
        rest["security"] = security
