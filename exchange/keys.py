"""The exchange's own signing keys (access tokens, audit checkpoints, notification signatures).

Kept in the database so that every process of one deployment (server, workers, CLI) signs with the same key and
publishes the same JWKS; the private half only sealed under the operator's key-encryption key (exchange.custody).
The newest key that is not retired signs. `rotate` retires the others: a retired key still verifies access tokens
for as long as one it signed can live, and checkpoints and notification signatures forever (it stays published).
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import Boolean, Column, DateTime, String, Table, Text, insert, select, text, update

from exchange.custody import KeyEncryptionKey, load_kek, sealed_fingerprint
from exchange.settings import Settings
from exchange.store.clock import from_db, to_db, utcnow
from exchange.store.engine import Database
from exchange.store.tables import metadata

SIGNING_ALG = "ES256"
# Processes that find no signing key take turns to make one (PostgreSQL; SQLite's write transaction is one at a time).
_CREATE_LOCK = 0x6B657973  # "keys"
log = logging.getLogger("exchange.keys")

exchange_key = Table(
    "exchange_key", metadata,
    Column("kid", String(64), primary_key=True),
    # Only a key written before key custody existed: sealed (and set to NULL) the first time a process loads it.
    Column("private_jwk", Text, nullable=True),
    Column("sealed_jwk", Text, nullable=True),
    Column("public_jwk", Text, nullable=True),
    Column("created", DateTime(timezone=False), nullable=False),
    Column("active", Boolean, nullable=False),  # published in the JWKS
    Column("retired", DateTime(timezone=False), nullable=True),  # no longer signs since
)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key: ECKey
    alg: str = SIGNING_ALG


@dataclass(frozen=True)
class KeyInfo:
    """What `exchange keys list` shows: never key material."""
    kid: str
    created: datetime
    retired: datetime | None
    signing: bool
    verifies_tokens_until: datetime | None  # None: the signing key (no end yet)
    sealed_under: str | None  # the KEK fingerprint; None for a clear key not yet sealed


def _public(kid: str, key: ECKey) -> dict:
    jwk = key.as_dict(private=False)
    jwk.update({"kid": kid, "use": "sig", "alg": SIGNING_ALG})
    return jwk


class KeyStore:
    """Loads (creating on first use) the exchange's keys; reloads them every `key_refresh_seconds`."""

    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.settings = settings
        self._kek: KeyEncryptionKey | None = None
        self._current: SigningKey | None = None
        self._public: dict | None = None
        self._tokens: dict | None = None
        self._loaded_at = 0.0

    @property
    def token_window(self) -> timedelta:
        """How long after retirement a key still verifies access tokens: the longest a token it signed can live,
        plus the time other processes may go on signing with it before they reload."""
        s = self.settings
        return timedelta(seconds=s.access_token_seconds + s.key_refresh_seconds + s.clock_skew_seconds)

    @property
    def loaded(self) -> bool:
        """Whether this process holds an unsealed signing key (readiness)."""
        return self._current is not None

    async def load(self) -> None:
        """Load now (the server calls this on start, so it refuses to start without a usable KEK)."""
        await self._load()

    async def current(self) -> SigningKey:
        await self._fresh()
        return self._current  # type: ignore[return-value]

    async def public_jwks(self) -> dict:
        """Every published key: what checkpoint and notification-signature verifiers need."""
        await self._fresh()
        return self._public  # type: ignore[return-value]

    async def token_jwks(self) -> dict:
        """The keys that may verify an access token now: the signing key and those retired within the window."""
        await self._fresh()
        return self._tokens  # type: ignore[return-value]

    async def refresh(self) -> None:
        """Forget the cached keys and load them again (another process may have rotated them)."""
        await self._load()

    async def rotate(self) -> SigningKey:
        """A new signing key; the others are retired (still published, verifying as the module docstring says)."""
        kek = self._kek_or_load()
        async with self.db.transaction() as conn:
            kid = await self._create(conn, kek)
            await conn.execute(update(exchange_key).where(exchange_key.c.retired.is_(None), exchange_key.c.kid != kid)
                               .values(retired=to_db(utcnow())))
        await self._load()
        return await self.current()

    async def describe(self) -> list[KeyInfo]:
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(select(exchange_key).order_by(exchange_key.c.created.desc()))).all()
        signing = next((r.kid for r in rows if r.retired is None and r.active), None)
        return [KeyInfo(r.kid, from_db(r.created), from_db(r.retired) if r.retired else None, r.kid == signing,
                        from_db(r.retired) + self.token_window if r.retired else None,
                        sealed_fingerprint(r.sealed_jwk) if r.sealed_jwk else None) for r in rows]

    def _kek_or_load(self) -> KeyEncryptionKey:
        if self._kek is None:
            self._kek = load_kek(self.settings)
        return self._kek

    async def _fresh(self) -> None:
        if self._current is None or time.monotonic() - self._loaded_at > self.settings.key_refresh_seconds:
            await self._load()

    async def _rows(self, conn):  # noqa: ANN001, ANN202
        return (await conn.execute(select(exchange_key).where(exchange_key.c.active.is_(True))
                                   .order_by(exchange_key.c.created.desc()))).all()

    async def _load(self) -> None:
        kek = self._kek_or_load()
        async with self.db.engine.connect() as conn:
            rows = await self._rows(conn)
        if not rows or any(r.private_jwk is not None for r in rows) or all(r.retired is not None for r in rows):
            async with self.db.transaction() as conn:
                if not self.db.is_sqlite:  # another process may be making the key now: wait for it, then see it
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})
                rows = await self._rows(conn)
                await self._seal_clear_keys(conn, kek, rows)
                if not rows or all(r.retired is not None for r in rows):
                    await self._create(conn, kek)
                rows = await self._rows(conn)
        signing = next(r for r in rows if r.retired is None)
        key = ECKey.import_key(orjson.loads(kek.open(signing.kid, signing.sealed_jwk)))
        cutoff = utcnow() - self.token_window
        self._current = SigningKey(signing.kid, key)
        self._public = {"keys": [orjson.loads(r.public_jwk) for r in rows]}
        self._tokens = {"keys": [orjson.loads(r.public_jwk) for r in rows
                                 if r.retired is None or from_db(r.retired) > cutoff]}
        self._loaded_at = time.monotonic()

    async def _seal_clear_keys(self, conn, kek: KeyEncryptionKey, rows) -> None:  # noqa: ANN001
        """The migration of keys stored in the clear before key custody: seal them, then drop the clear copy."""
        for row in rows:
            if row.private_jwk is None:
                continue
            key = ECKey.import_key(orjson.loads(row.private_jwk))
            await conn.execute(update(exchange_key).where(exchange_key.c.kid == row.kid).values(
                sealed_jwk=kek.seal(row.kid, row.private_jwk.encode()),
                public_jwk=orjson.dumps(_public(row.kid, key)).decode(), private_jwk=None))
            log.warning("sealed exchange key %s, stored in the clear until now, under KEK %s", row.kid,
                        kek.fingerprint)

    async def _create(self, conn, kek: KeyEncryptionKey) -> str:  # noqa: ANN001
        kid = uuid.uuid4().hex
        key = ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)
        await conn.execute(insert(exchange_key).values(
            kid=kid, sealed_jwk=kek.seal(kid, orjson.dumps(key.as_dict(private=True))),
            public_jwk=orjson.dumps(_public(kid, key)).decode(), created=to_db(utcnow()), active=True))
        return kid


def key_set(jwks: dict) -> KeySet:
    return KeySet.import_key_set(jwks)
