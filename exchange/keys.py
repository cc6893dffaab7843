"""The exchange's own signing keys (access tokens, audit checkpoints, notification signatures).

Kept in the database so that every process of one deployment (server, workers, CLI) signs with the same key and
publishes the same JWKS. The newest active key signs; all active keys are published so a rotated key still verifies.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from joserfc.jwk import ECKey, KeySet
from sqlalchemy import Boolean, Column, DateTime, String, Table, Text, insert, select

from exchange.store.engine import Database
from exchange.store.repository import to_db, utcnow
from exchange.store.tables import metadata

SIGNING_ALG = "ES256"

exchange_key = Table(
    "exchange_key", metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_jwk", Text, nullable=False),
    Column("created", DateTime(timezone=False), nullable=False),
    Column("active", Boolean, nullable=False),
)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key: ECKey
    alg: str = SIGNING_ALG


class KeyStore:
    """Loads (creating on first use) the exchange's signing key; caches it for the life of the process."""

    def __init__(self, db: Database):
        self.db = db
        self._current: SigningKey | None = None
        self._public: dict | None = None

    async def current(self) -> SigningKey:
        if self._current is None:
            await self._load()
        return self._current  # type: ignore[return-value]

    async def public_jwks(self) -> dict:
        if self._public is None:
            await self._load()
        return self._public  # type: ignore[return-value]

    async def _load(self) -> None:
        async with self.db.engine.begin() as conn:
            rows = (await conn.execute(select(exchange_key).where(exchange_key.c.active.is_(True))
                                       .order_by(exchange_key.c.created.desc()))).all()
            if not rows:
                await self._create(conn)
                rows = (await conn.execute(select(exchange_key).where(exchange_key.c.active.is_(True))
                                           .order_by(exchange_key.c.created.desc()))).all()
        keys = [ECKey.import_key(json.loads(r.private_jwk)) for r in rows]
        self._current = SigningKey(rows[0].kid, keys[0])
        public = []
        for row, key in zip(rows, keys):
            jwk = key.as_dict(private=False)
            jwk.update({"kid": row.kid, "use": "sig", "alg": SIGNING_ALG})
            public.append(jwk)
        self._public = {"keys": public}

    async def _create(self, conn) -> None:  # noqa: ANN001
        kid = uuid.uuid4().hex
        key = ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)
        await conn.execute(insert(exchange_key).values(kid=kid, private_jwk=json.dumps(key.as_dict(private=True)),
                                                       created=to_db(utcnow()), active=True))

    async def refresh(self) -> None:
        """Forget the cached keys and load them again (another process may have rotated them)."""
        self._current = self._public = None
        await self._load()

    async def rotate(self) -> SigningKey:
        """Add a new signing key (old ones stay published until deactivated)."""
        async with self.db.engine.begin() as conn:
            await self._create(conn)
        self._current = self._public = None
        return await self.current()


def key_set(jwks: dict) -> KeySet:
    return KeySet.import_key_set(jwks)
