"""Fetching a partner's JWK Set from its JWKS URL: a request the partner controls, so it goes through the egress
policy (exchange.egress): https only (plain http to loopback only when `jwks_allow_loopback` is set, for
development and tests), the name resolved and every address checked at each fetch, the connection made to the
address checked, no redirects, a time-out and a size cap.

Sets are cached for `jwks_cache_seconds`; an assertion with an unknown `kid` forces one refetch (at most one per
`jwks_refetch_interval_seconds` per URL, so unknown kids cannot turn the exchange into a request pump).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
import orjson

from exchange.auth.clients import ClientError, check_public_jwks
from exchange.egress import EgressPolicy, EgressRefused, read_capped
from exchange.settings import Settings


class JwksFetchError(Exception):
    """The JWK Set could not be fetched or is not acceptable (the message names the reason, never a key)."""


@dataclass
class _Cached:
    jwks: dict
    fetched: float


class JwksFetcher:
    """Per-process cache of partners' JWK Sets, keyed by URL."""

    def __init__(self, settings: Settings, policy: EgressPolicy):
        self.settings = settings
        self.policy = policy
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, url: str, refresh: bool = False) -> dict:
        """The JWK Set at `url`, from the cache unless stale or `refresh` (rate-limited) is asked."""
        cached = self._cache.get(url)
        now = time.monotonic()
        if cached and not refresh and now - cached.fetched < self.settings.jwks_cache_seconds:
            return cached.jwks
        if cached and refresh and now - cached.fetched < self.settings.jwks_refetch_interval_seconds:
            return cached.jwks
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            again = self._cache.get(url)
            if again is not None and again is not cached:
                return again.jwks  # someone else fetched while we waited
            jwks = await self._fetch(url)
            self._cache[url] = _Cached(jwks, time.monotonic())
            return jwks

    async def _fetch(self, url: str) -> dict:
        settings = self.settings
        try:
            async with self.policy.client(timeout=settings.jwks_fetch_timeout_seconds) as http:
                async with http.stream("GET", url, headers={"Accept": "application/json"}) as response:
                    if response.status_code != 200:
                        raise JwksFetchError(f"the JWKS URL answered {response.status_code}")
                    body = await read_capped(response, settings.jwks_max_bytes)
        except EgressRefused as exc:
            if str(exc).startswith("answered with more than"):
                raise JwksFetchError(f"the JWK Set is larger than {settings.jwks_max_bytes} bytes") from None
            raise JwksFetchError(f"the exchange does not call this JWKS URL: it {exc}") from None
        except httpx.TimeoutException:
            raise JwksFetchError("the JWKS URL did not answer in time") from None
        except httpx.HTTPError as exc:
            raise JwksFetchError(f"the JWKS URL could not be fetched ({type(exc).__name__})") from None
        try:
            return check_public_jwks(orjson.loads(body))
        except orjson.JSONDecodeError:
            raise JwksFetchError("the JWKS URL did not return JSON") from None
        except ClientError as exc:
            raise JwksFetchError(f"the fetched JWK Set is not acceptable: {exc}") from None
