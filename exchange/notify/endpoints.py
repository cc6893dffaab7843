"""Where the exchange may send notifications: a partner chooses the URL, so the exchange must not be turned into a
probe of its own network. https only; an address literal must be one the exchange calls at all (the same rule as
for partners' JWKS URLs: never private, link-local/metadata, multicast, reserved or unspecified); loopback (and
plain http to it) only when the deployment allows it for development and tests."""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from exchange.auth.jwks import address_allowed
from exchange.settings import Settings

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def endpoint_problem(url: str, settings: Settings) -> str | None:
    """Why `url` may not receive notifications, or None when it may."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "is not a valid URL"
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        return "must be an absolute https URL"
    if parts.username or parts.password:
        return "must not carry credentials (use channel.header)"
    if parts.fragment:
        return "must not have a fragment"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host in _LOOPBACK_NAMES or (address is not None and address.is_loopback):
        return None if settings.notify_allow_loopback else "must not be a loopback address"
    if address is not None and not address_allowed(str(address), settings.notify_allow_loopback):
        return "must not be a private, link-local, multicast, reserved or metadata address"
    if parts.scheme != "https":
        return "must use https"
    return None
