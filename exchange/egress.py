"""Outbound requests to URLs a partner chose (its JWKS URL, its notification endpoint): one policy for both.

A partner controls the URL, so the exchange must not become a probe of its own network (SSRF). The rule:
- https only; plain http only to loopback, and loopback only when the deployment allows it for development and
  tests (`jwks_allow_loopback`, `notify_allow_loopback`);
- the host is a DNS name or a canonical address literal: odd IPv4 spellings (`127.1`, `0x7f000001`, `2130706433`,
  `017700000001`, `0`), which resolvers turn into addresses, are refused outright; `localhost` and `*.localhost`
  (RFC 6761) count as loopback whatever DNS says;
- the name is resolved and refused if ANY address is not public unicast (`ipaddress`' own properties, plus the
  metadata and translation ranges of `BLOCKED`, where a public-looking address reaches inside);
- the connection goes to an address that was checked for this request (`client()` pins it below httpx, so DNS
  rebinding cannot swap it, while TLS still verifies the certificate for the name);
- no redirects, no proxies from the environment, a time-out and a size cap (`read_capped`).
It is applied when the URL is registered and again on every request.

The resolver is injectable (`Egress.resolver`): tests give the exchange a DNS of their own.
"""
from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

import httpcore
import httpx

if TYPE_CHECKING:
    from exchange.kernel.exchange import Exchange

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Awaitable[list[str]]]

# Addresses `ipaddress` may call global that still lead inside (or to a cloud's control plane): rules as data.
BLOCKED: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(network), why) for network, why in (
        ("100.64.0.0/10", "carrier-grade NAT (shared address space; Alibaba metadata 100.100.100.200)"),
        ("169.254.169.254/32", "cloud metadata (AWS, GCP, Azure, OpenStack)"),
        ("168.63.129.16/32", "Azure platform wire server"),
        ("192.0.0.0/24", "IETF protocol assignments (Oracle Cloud metadata 192.0.0.192)"),
        ("198.18.0.0/15", "benchmarking"),
        ("fd00:ec2::254/128", "AWS IPv6 metadata"),
        ("::ffff:0:0/96", "IPv4-mapped IPv6"),
        ("::/96", "IPv4-compatible IPv6"),
        ("::ffff:0:0:0/96", "IPv4-translated IPv6 (SIIT)"),
        ("64:ff9b::/96", "NAT64 well-known prefix"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("2002::/16", "6to4"),
        ("2001::/32", "Teredo"),
        ("100::/64", "discard-only"),
    ))
_V6_LOOPBACK = ipaddress.IPv6Address("::1")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


class EgressRefused(Exception):
    """The exchange will not send this request. The message names the rule, never the URL or an address."""


def _is_loopback(ip: IPAddress) -> bool:
    """127/8 or ::1 itself (a mapped or translated form of loopback is refused as such, never allowed)."""
    return ip == _V6_LOOPBACK or (ip.version == 4 and ip.is_loopback)


def address_problem(ip: IPAddress, allow_loopback: bool) -> str | None:
    """Why the exchange may not connect to `ip`, or None when it may (a public unicast address)."""
    if _is_loopback(ip):
        return None if allow_loopback else "is a loopback address"
    for network, why in BLOCKED:
        if ip.version == network.version and ip in network:
            return f"is in a blocked range ({why})"
    if (ip.is_multicast or ip.is_unspecified or ip.is_link_local or ip.is_private or ip.is_reserved
            or not ip.is_global or (ip.version == 6 and ip.is_site_local)):
        return "is not a public unicast address"
    return None


def _loopback_name(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost") or name in ("localhost.localdomain", "ip6-localhost")


def _static(url: str | httpx.URL, allow_loopback: bool) -> tuple[str | None, httpx.URL | None, str, IPAddress | None]:
    """(problem, parsed URL, host, address literal): every check that needs no DNS lookup."""
    try:
        parsed = httpx.URL(url)  # the parser of the client that will connect: no parser differential
        parsed.port  # noqa: B018
    except (httpx.InvalidURL, ValueError, TypeError):
        return "is not a valid URL", None, "", None
    if parsed.scheme not in ("https", "http") or not parsed.raw_host:
        return "must be an absolute https URL", None, "", None
    if parsed.userinfo:
        return "must not carry credentials in the URL", None, "", None
    if parsed.fragment:
        return "must not have a fragment", None, "", None
    if parsed.scheme == "http" and not allow_loopback:
        return "must use https", None, "", None
    try:
        host = parsed.raw_host.decode("ascii").lower()
    except UnicodeDecodeError:
        return "is not a valid URL", None, "", None
    name = host.rstrip(".")
    try:
        literal = ipaddress.ip_address(name)
    except ValueError:
        literal = None
    if literal is None:
        if not name or _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
            return "must name its host by a DNS name or a canonical IP address", None, "", None
        if _loopback_name(name) and not allow_loopback:
            return "is a loopback address", None, "", None
    else:
        problem = address_problem(literal, allow_loopback)
        if problem:
            return problem, None, "", None
    return None, parsed, host, literal


def url_problem(url: str | httpx.URL, allow_loopback: bool) -> str | None:
    """What is wrong with `url` before any DNS lookup (scheme, credentials, host spelling, literals), or None."""
    return _static(url, allow_loopback)[0]


@dataclass(frozen=True)
class Target:
    """A URL that passed the policy, with the addresses it may be connected to for this request."""
    url: httpx.URL
    host: str  # as the connection layer sees it (IDNA, lower case)
    addresses: tuple[str, ...]


async def system_resolver(host: str) -> list[str]:
    """The machine's resolver (getaddrinfo): every address of `host`."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


class EgressPolicy:
    """The rule above for one purpose (its own loopback switch); `resolve` is the exchange's resolver."""

    def __init__(self, allow_loopback: bool, resolve: Resolver, resolve_timeout: float = 5.0):
        self.allow_loopback = allow_loopback
        self._resolve = resolve
        self.resolve_timeout = resolve_timeout

    def url_problem(self, url: str | httpx.URL) -> str | None:
        """What is wrong with `url` before any DNS lookup (scheme, credentials, host spelling, literals)."""
        return url_problem(url, self.allow_loopback)

    async def check(self, url: str | httpx.URL) -> Target:
        """Resolve and check `url` (raise EgressRefused): every address must be one the exchange may call."""
        problem, parsed, host, literal = _static(url, self.allow_loopback)
        if problem:
            raise EgressRefused(problem)
        assert parsed is not None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await asyncio.wait_for(self._resolve(host), self.resolve_timeout)
            except (OSError, asyncio.TimeoutError, UnicodeError):
                addresses = []
            if not addresses:
                raise EgressRefused("has a host that does not resolve")
        ips = []
        for address in dict.fromkeys(addresses):
            try:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError:
                raise EgressRefused("has a host that resolves to something that is not an address") from None
            problem = address_problem(ip, self.allow_loopback)
            if problem:
                raise EgressRefused(f"has a host that resolves to an address that {problem}")
            ips.append(ip)
        loopback = all(_is_loopback(ip) for ip in ips)
        if _loopback_name(host.rstrip(".")) and not loopback:
            raise EgressRefused("names localhost but does not resolve to loopback")
        if parsed.scheme == "http" and not loopback:
            raise EgressRefused("must use https")
        return Target(parsed, host, tuple(str(ip) for ip in ips))

    def client(self, timeout: float | httpx.Timeout | None = None,
               limits: httpx.Limits = httpx.Limits(max_connections=20, max_keepalive_connections=10)
               ) -> httpx.AsyncClient:
        """An httpx client whose every request passes `check` and connects only to the addresses it checked."""
        return httpx.AsyncClient(transport=_PinnedTransport(self, limits), follow_redirects=False, trust_env=False,
                                 timeout=timeout if timeout is not None else httpx.Timeout(10.0))


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The body of a streamed response, refusing (EgressRefused) more than `limit` bytes."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise EgressRefused(f"answered with more than {limit} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > limit:
            raise EgressRefused(f"answered with more than {limit} bytes")
    return bytes(body)


# --- pinning: the addresses checked for the request in flight, read by the connection layer ------------------
_PINNED: ContextVar[dict[str, tuple[str, ...]]] = ContextVar("egress_pinned", default={})


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer, connecting a host only to the addresses `check` passed for this request."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options=None) -> httpcore.AsyncNetworkStream:  # noqa: ANN001
        addresses = _PINNED.get().get(host.lower())
        if not addresses:
            raise httpcore.ConnectError("egress: no checked address for this host")
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options=None) -> httpcore.AsyncNetworkStream:  # noqa: ANN001
        raise httpcore.ConnectError("egress: no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport over the pinned backend (httpx has no public parameter for the network backend, so
    the pool is built here with httpx's defaults; tests connect through real sockets to keep this honest)."""

    def __init__(self, policy: EgressPolicy, limits: httpx.Limits):
        super().__init__(trust_env=False, limits=limits, retries=0)
        self.policy = policy
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            retries=0, network_backend=_PinnedBackend())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = await self.policy.check(request.url)
        token = _PINNED.set({**_PINNED.get(), target.host: target.addresses})
        try:
            return await super().handle_async_request(request)
        finally:
            _PINNED.reset(token)


class Egress:
    """The exchange's outbound policies, one per purpose, sharing one resolver (`egress(exchange)` finds it)."""

    def __init__(self, exchange: "Exchange"):
        settings = exchange.settings
        self.resolver: Resolver = system_resolver
        self.jwks = EgressPolicy(settings.jwks_allow_loopback, self._resolve, settings.jwks_fetch_timeout_seconds)
        self.notify = EgressPolicy(settings.notify_allow_loopback, self._resolve, settings.notify_default_timeout)

    async def _resolve(self, host: str) -> list[str]:
        return await self.resolver(host)


def egress(exchange: "Exchange") -> Egress:
    found = exchange.extensions.get("egress")
    if found is None:
        found = exchange.extensions["egress"] = Egress(exchange)
    return found
