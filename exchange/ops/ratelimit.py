"""Rate limits: per client and per source address on the token endpoint, per client on the bearer-protected routes.

Fixed windows (`count` requests per `seconds`), counted where every process of a deployment sees them: Redis when
`EXCHANGE_RATE_LIMIT_REDIS_URL` is set, else the database on PostgreSQL (one UPSERT on a small table), else (SQLite,
one process) memory. So that a busy client does not cost a database round trip per request, a process takes its
allowance in chunks (a twentieth of the limit) and spends them locally: across P processes a client may be refused
up to P chunks early, never let through late.

A refusal is 429 with `Retry-After` (the seconds until the window ends) and an OperationOutcome, counted in
`exchange_rate_limited_total{limit=...}`. The token endpoint counts the tokens a client was issued (its assertion
authenticated it; one past the limit is withheld and answered 429), so nobody can use up another client's
allowance by naming its client id; every request counts for its source address, before any signature is checked.
"""
from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import delete, text

from exchange.errors import TooManyRequests
from exchange.ops import counters
from exchange.ops.tables import rate_limit_window
from exchange.settings import Settings
from exchange.store.engine import Database

CHUNKS = 20  # a process claims 1/CHUNKS of a limit at a time


@dataclass(frozen=True)
class Limit:
    name: str  # the metric label: token-client, token-address, fhir-client
    count: int
    seconds: int

    @classmethod
    def parse(cls, name: str, spec: str) -> "Limit":
        count, _, seconds = spec.partition("/")
        return cls(name, int(count), int(seconds or 60))

    @property
    def chunk(self) -> int:
        return max(1, self.count // CHUNKS)


class Counts(Protocol):
    async def add(self, key: str, window_start: int, amount: int, ttl: int) -> int:
        """Add `amount` to the window's count and return the new total (for every process of the deployment)."""


class MemoryCounts:
    def __init__(self) -> None:
        self.windows: dict[tuple[str, int], int] = {}

    async def add(self, key: str, window_start: int, amount: int, ttl: int) -> int:
        now = int(time.time())
        if len(self.windows) > 10000:
            self.windows = {k: v for k, v in self.windows.items() if k[1] + ttl > now}
        total = self.windows.get((key, window_start), 0) + amount
        self.windows[(key, window_start)] = total
        return total


_UPSERT = text("INSERT INTO rate_limit_window (key, window_start, count) VALUES (:key, :window_start, :amount) "
               "ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limit_window.count + excluded.count "
               "RETURNING count")


class DatabaseCounts:
    """PostgreSQL: one autocommit UPSERT per claimed chunk; expired windows are deleted now and then."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.claims = 0

    async def add(self, key: str, window_start: int, amount: int, ttl: int) -> int:
        async with self.db.engine.connect() as conn:
            total = (await conn.execute(_UPSERT, {"key": key, "window_start": window_start, "amount": amount})
                     ).scalar_one()
            self.claims += 1
            if self.claims % 500 == 0:
                await conn.execute(delete(rate_limit_window)
                                   .where(rate_limit_window.c.window_start < int(time.time()) - 2 * ttl))
            await conn.commit()
        return int(total)


class RedisCounts:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.redis = redis.from_url(url)

    async def add(self, key: str, window_start: int, amount: int, ttl: int) -> int:
        name = f"exchange:rl:{key}:{window_start}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incrby(name, amount)
            pipe.expire(name, ttl + 1)
            total, _ = await pipe.execute()
        return int(total)


@dataclass
class _Allowance:
    window_start: int
    left: int = 0
    exhausted: bool = False


@dataclass
class Limiter:
    counts: Counts
    allowances: dict[tuple[str, str], _Allowance] = field(default_factory=dict)
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    def _window(self, limit: Limit, now: float) -> int:
        return int(now // limit.seconds) * limit.seconds

    def _retry_after(self, limit: Limit, window_start: int, now: float) -> int:
        return max(1, math.ceil(window_start + limit.seconds - now))

    async def hit(self, limit: Limit, subject: str) -> int | None:
        """Count one request; None if it may go on, else the seconds until it may retry."""
        now = time.time()
        window = self._window(limit, now)
        slot = (limit.name, subject)
        allowance = self.allowances.get(slot)
        if allowance is None or allowance.window_start != window:
            allowance = self.allowances[slot] = _Allowance(window)
            if len(self.allowances) > 20000:
                self.allowances = {k: a for k, a in self.allowances.items() if a.window_start >= window - 3600}
        if allowance.left > 0:
            allowance.left -= 1
            return None
        if allowance.exhausted:
            return self._retry_after(limit, window, now)
        lock = self.locks.setdefault(slot, asyncio.Lock())
        async with lock:  # one claim at a time per subject in this process
            if allowance.left == 0 and not allowance.exhausted:
                total = await self.counts.add(f"{limit.name}:{subject}", window, limit.chunk, limit.seconds)
                granted = min(limit.chunk, max(0, limit.count - (total - limit.chunk)))
                allowance.left += granted
                allowance.exhausted = granted < limit.chunk
            if allowance.left > 0:
                allowance.left -= 1
                return None
        return self._retry_after(limit, window, now)


def refusal(limit: Limit, retry_after: int) -> TooManyRequests:
    counters.rate_limited.labels(limit.name).inc()
    return TooManyRequests(f"Too many requests: at most {limit.count} per {limit.seconds} s for this "
                           f"{'address' if limit.name.endswith('address') else 'client'}; retry later",
                           headers={"Retry-After": str(retry_after)})


class RateLimits:
    """The exchange's limits, looked up by the token endpoint and the bearer check (`exchange.extensions`)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.enabled = settings.rate_limit_enabled
        self.token_client = Limit.parse("token-client", settings.rate_limit_token_per_client)
        self.token_address = Limit.parse("token-address", settings.rate_limit_token_per_address)
        self.fhir_client = Limit.parse("fhir-client", settings.rate_limit_fhir_per_client)
        if settings.rate_limit_redis_url:
            counts: Counts = RedisCounts(settings.rate_limit_redis_url)
        elif db.is_sqlite:
            counts = MemoryCounts()
        else:
            counts = DatabaseCounts(db)
        self.limiter = Limiter(counts)

    async def _check(self, limit: Limit, subject: str | None) -> None:
        if not self.enabled or subject is None:
            return
        retry = await self.limiter.hit(limit, subject)
        if retry is not None:
            raise refusal(limit, retry)

    async def token_request(self, address: str | None) -> None:
        """Before a token request is processed (before its assertion costs a signature check)."""
        await self._check(self.token_address, address)

    async def token_authenticated(self, client_id: str) -> None:
        """A token was issued to `client_id`: past the limit it is withheld (never sent) and the answer is 429."""
        await self._check(self.token_client, client_id)

    async def bearer(self, client_id: str) -> None:
        await self._check(self.fhir_client, client_id)


def install(exchange) -> None:  # noqa: ANN001
    exchange.extensions["rate-limits"] = RateLimits(exchange.settings, exchange.db)


def limits_of(exchange) -> RateLimits | None:  # noqa: ANN001
    return exchange.extensions.get("rate-limits")
