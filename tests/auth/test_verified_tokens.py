"""The bearer check verifies a token's signature once per process (exchange.auth.verified) and keeps it no longer
than the token lives, nor longer than its key verifies tokens; revocation and a disabled client still stop the
token on the next request (tests/auth/test_bearer.py, test_introspection_revocation.py)."""
from __future__ import annotations

import time

import pytest

from exchange.auth import tokens
from exchange.auth.service import auth_service
from exchange.auth.verified import VerifiedTokens


async def test_a_token_verified_before_is_refused_once_it_expires(exchange, make_org, make_client):
    partner = await make_client(await make_org())
    assert (await partner.get("/Organization")).status_code == 200  # verified, and kept
    cache = auth_service(exchange).verified
    assert len(cache) == 1
    expires = tokens.verify(partner.access_token, await exchange.keys.token_jwks(), exchange.settings).expires_at
    cache.clock = lambda: expires + exchange.settings.clock_skew_seconds  # the last second it may be used
    assert (await partner.get("/Organization")).status_code == 200
    cache.clock = lambda: expires + exchange.settings.clock_skew_seconds + 1
    refused = await partner.get("/Organization")
    assert refused.status_code == 401
    assert "expired" in refused.headers["www-authenticate"]


async def test_a_kept_token_is_refused_once_its_key_no_longer_verifies_tokens(app, exchange, settings):
    signing = await exchange.keys.current()
    token, _ = tokens.issue(signing, settings, "c1", "org-1", "partner", "system/*.rs")
    cache = VerifiedTokens(settings.clock_skew_seconds)
    jwks = await exchange.keys.token_jwks()
    assert cache.verify(token, jwks, settings).client_id == "c1"
    with pytest.raises(tokens.UnknownKey):
        cache.verify(token, {"keys": [k for k in jwks["keys"] if k["kid"] != signing.kid]}, settings)
    assert len(cache) == 0


async def test_the_kept_tokens_are_bounded(app, exchange, settings):
    signing = await exchange.keys.current()
    jwks = await exchange.keys.token_jwks()
    cache = VerifiedTokens(settings.clock_skew_seconds, max_entries=2)
    issued = [tokens.issue(signing, settings, f"c{n}", "org-1", "partner", "system/*.rs")[0] for n in range(3)]
    for token in issued:
        cache.verify(token, jwks, settings)
    assert len(cache) == 2


async def test_a_forged_token_is_never_kept(app, exchange, settings):
    signing = await exchange.keys.current()
    token, _ = tokens.issue(signing, settings, "c1", "org-1", "partner", "system/*.rs")
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    cache = VerifiedTokens(settings.clock_skew_seconds, clock=time.time)
    with pytest.raises(tokens.InvalidToken):
        cache.verify(forged, await exchange.keys.token_jwks(), settings)
    assert len(cache) == 0
