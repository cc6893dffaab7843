"""The authorisation side of one running exchange: its client registry, the JWKS cache, and its endpoint URLs.

Created once per Exchange by `exchange.auth.install` and found again with `auth_service(exchange)`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from joserfc.jwk import KeySet

from exchange.auth.clients import ClientRecord, ClientRegistry
from exchange.auth.jwks import JwksFetcher
from exchange.auth.verified import VerifiedTokens
from exchange.egress import egress
from exchange.settings import Settings

if TYPE_CHECKING:
    from exchange.kernel.exchange import Exchange

TOKEN_PATH = "/auth/token"
INTROSPECT_PATH = "/auth/introspect"
REVOKE_PATH = "/auth/revoke"
JWKS_PATH = "/.well-known/jwks.json"
SMART_CONFIG_PATH = "/fhir/.well-known/smart-configuration"


@dataclass(frozen=True)
class Urls:
    token: str
    introspection: str
    revocation: str
    jwks: str

    @classmethod
    def of(cls, settings: Settings) -> "Urls":
        base = settings.base_url
        return cls(base + TOKEN_PATH, base + INTROSPECT_PATH, base + REVOKE_PATH, base + JWKS_PATH)


class AuthService:
    def __init__(self, exchange: "Exchange"):
        self.exchange = exchange
        self.settings = exchange.settings
        self.registry = ClientRegistry(exchange.db, egress(exchange).jwks, exchange.read_along)
        self.fetcher = JwksFetcher(exchange.settings, egress(exchange).jwks)
        self.urls = Urls.of(exchange.settings)
        self.verified = VerifiedTokens(exchange.settings.clock_skew_seconds)  # the bearer check's signature cache
        self._keys_reloaded = 0.0

    def may_reload_keys(self, interval: float = 10.0) -> bool:
        """Whether a token with an unknown kid may make this process reload the exchange's keys now."""
        now = time.monotonic()
        if now - self._keys_reloaded < interval:
            return False
        self._keys_reloaded = now
        return True

    async def client_keys(self, client: ClientRecord, refresh: bool = False) -> KeySet:
        """The client's public keys: registered by value, or fetched from its JWKS URL (cached)."""
        if client.jwks is not None:
            return KeySet.import_key_set(client.jwks)
        assert client.jwks_url is not None
        return KeySet.import_key_set(await self.fetcher.get(client.jwks_url, refresh=refresh))


def auth_service(exchange: "Exchange") -> AuthService:
    service = exchange.extensions.get("auth")
    if service is None:
        raise RuntimeError("exchange.auth is not installed on this exchange (see exchange.main.build)")
    return service
