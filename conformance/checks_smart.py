"""SMART App Launch 2.x Backend Services, as a client meets it: discovery, the token, and every refusal."""
from __future__ import annotations

import httpx

from conformance.runner import Kit, check, expect, expect_status
from conformance.session import ASSERTION_TYPE

BACKEND = "SMART App Launch 2.x, Backend Services"
RFC6749 = "RFC 6749 §5.2"


@check("smart-discovery", "smart", "/.well-known/smart-configuration lists the token endpoint, private_key_jwt, "
       "client_credentials, S256 and only what is served", f"{BACKEND} §Discovery; SMART 2.x §Conformance")
def discovery(kit: Kit) -> None:
    doc = kit.discovery
    expect(isinstance(doc.get("token_endpoint"), str), "no token_endpoint")
    expect("private_key_jwt" in doc.get("token_endpoint_auth_methods_supported", []), "private_key_jwt missing")
    expect("client_credentials" in doc.get("grant_types_supported", []), "client_credentials missing")
    expect("S256" in doc.get("code_challenge_methods_supported", []), "code_challenge_methods_supported lacks S256")
    algs = set(doc.get("token_endpoint_auth_signing_alg_values_supported", []))
    expect(bool(algs & {"RS384", "ES384"}), "neither RS384 nor ES384 is accepted")
    if "authorization_endpoint" not in doc:
        expect("token" not in doc.get("response_types_supported", []) and
               "code" not in doc.get("response_types_supported", []),
               "response_types_supported lists a response type without an authorization endpoint")


@check("smart-token", "smart", "a signed client assertion gets a Bearer token of at most 300 s",
       f"{BACKEND} §Obtaining an access token")
def token(kit: Kit) -> None:
    r = expect_status(kit.me.token_request(kit.token_url), 200)
    body = r.json()
    expect(body.get("token_type", "").lower() == "bearer", "token_type is not bearer")
    expect(0 < int(body.get("expires_in", 0)) <= 300, f"expires_in {body.get('expires_in')} is not in 1..300")
    expect(r.headers.get("cache-control", "").lower().find("no-store") >= 0, "Cache-Control: no-store missing")


def _refused(kit: Kit, form: dict, errors: tuple[str, ...], statuses: tuple[int, ...] = (400, 401)) -> None:
    base = {"grant_type": "client_credentials", "scope": "system/*.rs", "client_assertion_type": ASSERTION_TYPE}
    r = httpx.post(kit.token_url, data={k: v for k, v in {**base, **form}.items() if v is not None}, timeout=20)
    expect_status(r, *statuses)
    error = r.json().get("error") if r.headers.get("content-type", "").startswith("application/json") else None
    expect(error in errors, f"error is {error!r}, expected {' or '.join(errors)}")
    if r.status_code == 401:
        expect("www-authenticate" in r.headers, "a 401 without WWW-Authenticate (RFC 7235 §3.1)")


def _refusal(id_: str, rule: str, build, errors=("invalid_client",), statuses=(400, 401)) -> None:  # noqa: ANN001
    @check(id_, "smart", rule, f"{BACKEND} §Signature verification; {RFC6749}")
    def refusal(kit: Kit) -> None:
        _refused(kit, build(kit), errors, statuses)


_refusal("smart-refuse-wrong-aud", "an assertion whose aud is not the token endpoint is refused",
         lambda k: {"client_assertion": k.me.sign("https://elsewhere.example.org/token")})
_refusal("smart-refuse-expired", "an expired assertion is refused",
         lambda k: {"client_assertion": k.me.sign(k.token_url, lifetime=-60)})
_refusal("smart-refuse-long-exp", "an assertion valid for more than 5 minutes is refused",
         lambda k: {"client_assertion": k.me.sign(k.token_url, lifetime=900)})
_refusal("smart-refuse-unknown-client", "an assertion from an unregistered client id is refused",
         lambda k: {"client_assertion": k.me.sign(k.token_url, iss="no-such-client", sub="no-such-client")})
_refusal("smart-refuse-iss-sub", "iss and sub must both be the client id",
         lambda k: {"client_assertion": k.me.sign(k.token_url, iss="someone-else")})
_refusal("smart-refuse-malformed", "a malformed assertion is refused with 400",
         lambda k: {"client_assertion": "not-a-jwt"}, errors=("invalid_client", "invalid_request"), statuses=(400,))
_refusal("smart-refuse-assertion-type", "an unknown client_assertion_type is refused with 400",
         lambda k: {"client_assertion": k.me.sign(k.token_url), "client_assertion_type": "urn:example:other"},
         errors=("invalid_request", "invalid_client"), statuses=(400,))


@check("smart-refuse-replay", "smart", "a jti is accepted once", f"{BACKEND} §Signature verification (jti)")
def replay(kit: Kit) -> None:
    once = kit.me.sign(kit.token_url)
    form = {"grant_type": "client_credentials", "scope": "system/*.rs", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": once}
    expect_status(httpx.post(kit.token_url, data=form, timeout=20), 200)
    _refused(kit, {"client_assertion": once}, ("invalid_client", "invalid_grant"))


@check("smart-bearer-required", "smart", "FHIR requests without a valid token get 401 with WWW-Authenticate: Bearer",
       "RFC 6750 §3; SMART App Launch 2.x §Backend Services (access token use)")
def bearer(kit: Kit) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        r = httpx.get(f"{kit.base_url}/fhir/Patient", headers={"Accept": "application/fhir+json", **headers},
                      timeout=20)
        expect_status(r, 401)
        expect(r.headers.get("www-authenticate", "").lower().startswith("bearer"), "WWW-Authenticate: Bearer missing")
        expect(r.json().get("resourceType") == "OperationOutcome", "the 401 body is not an OperationOutcome")
