"""Fetching a partner's JWK Set from its JWKS URL: a request the partner controls, so it is fenced in.

https only (plain http and loopback only when `jwks_allow_loopback` is set, for development and tests), no
redirects, a time-out, a size cap, and never to a private, link-local (cloud metadata), multicast or reserved
address. Sets are cached for `jwks_cache_seconds`; an assertion with an unknown `kid` forces one refetch (at most
one per `jwks_refetch_interval_seconds` per URL, so unknown kids cannot turn the exchange into a request pump).
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import orjson

from exchange.auth.clients import ClientError, check_public_jwks
from exchange.settings import Settings


class JwksFetchError(Exception):
    """The JWK Set could not be fetched or is not acceptable (the message names the reason, never a key)."""


@dataclass
class _Cached:
    jwks: dict
    fetched: float


def address_allowed(address: str, allow_loopback: bool) -> bool:
    """Whether the exchange may call `address` (a URL a partner chose: JWKS, notification endpoint)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_loopback
    return not (ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified)


async def _addresses(host: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise JwksFetchError(f"the JWKS host '{host}' does not resolve") from None
    return sorted({info[4][0] for info in infos})


async def check_url(url: str, settings: Settings) -> None:
    """Refuse URLs the exchange must not fetch (scheme, host, addresses)."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise JwksFetchError("the JWKS URL has no host")
    addresses = await _addresses(host)
    if not addresses:
        raise JwksFetchError(f"the JWKS host '{host}' does not resolve")
    if parts.scheme == "http":
        loopback = all(ipaddress.ip_address(a).is_loopback for a in addresses)
        if not (settings.jwks_allow_loopback and loopback):
            raise JwksFetchError("the JWKS URL must use https")
    elif parts.scheme != "https":
        raise JwksFetchError("the JWKS URL must use https")
    for address in addresses:
        if not address_allowed(address, settings.jwks_allow_loopback):
            raise JwksFetchError(f"the JWKS host '{host}' resolves to an address the exchange does not call")


class JwksFetcher:
    """Per-process cache of partners' JWK Sets, keyed by URL."""

    def __init__(self, settings: Settings):
        self.settings = settings
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
        await check_url(url, settings)
        limit = settings.jwks_max_bytes
        try:
            async with httpx.AsyncClient(timeout=settings.jwks_fetch_timeout_seconds, follow_redirects=False,
                                         trust_env=False) as http:
                async with http.stream("GET", url, headers={"Accept": "application/json"}) as response:
                    if response.status_code != 200:
                        raise JwksFetchError(f"the JWKS URL answered {response.status_code}")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise JwksFetchError(f"the JWK Set is larger than {limit} bytes")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body.extend(chunk)
                        if len(body) > limit:
                            raise JwksFetchError(f"the JWK Set is larger than {limit} bytes")
        except httpx.TimeoutException:
            raise JwksFetchError("the JWKS URL did not answer in time") from None
        except httpx.HTTPError as exc:
            raise JwksFetchError(f"the JWKS URL could not be fetched ({type(exc).__name__})") from None
        try:
            return check_public_jwks(orjson.loads(bytes(body)))
        except orjson.JSONDecodeError:
            raise JwksFetchError("the JWKS URL did not return JSON") from None
        except ClientError as exc:
            raise JwksFetchError(f"the fetched JWK Set is not acceptable: {exc}") from None
