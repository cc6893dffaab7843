"""Signed checkpoints: the exchange's ES256 key signs {tree size, head hash, time} of the chain.

A checkpoint is a compact JWS (header alg, kid, typ). Anyone holding the published JWKS can verify it with any JOSE
library; two checkpoints and the records between them prove that nothing in between was removed or altered.
Only linked records are signed: the queue is linked first. What is read back (and published) is the signed
statement itself, its values taken from the JWS payload, never from the columns stored beside it.
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from exchange.audit import linker
from exchange.audit.chain import GENESIS, canonical
from exchange.audit.tables import audit_checkpoint, audit_head
from exchange.keys import key_set
from exchange.store.clock import fhir_instant, to_db, utcnow

JWS_TYPE = "audit-checkpoint+jws"


@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    head: str
    time: str
    jws: str

    def as_json(self) -> dict:
        return {"tree_size": self.tree_size, "head": self.head, "time": self.time, "checkpoint": self.jws}


class BadCheckpoint(ValueError):
    """The checkpoint's signature or contents do not verify."""


async def current_head(exchange) -> tuple[int, str]:  # noqa: ANN001
    async with exchange.db.engine.connect() as conn:
        row = (await conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1))).first()
    return (int(row.seq), row.hash) if row else (0, GENESIS)


async def sign_checkpoint(exchange) -> Checkpoint:  # noqa: ANN001
    """Link the queue, sign the chain's head (or return the checkpoint already signed for this tree size)."""
    await linker.settle(exchange)
    size, head = await current_head(exchange)
    existing = await stored_checkpoint(exchange, size)
    if existing is not None:
        return existing
    key = await exchange.keys.current()
    now = utcnow()
    payload = {"iss": exchange.settings.base_url, "tree_size": size, "head": head, "time": fhir_instant(now)}
    token = jws.serialize_compact({"alg": key.alg, "kid": key.kid, "typ": JWS_TYPE}, canonical(payload), key.key)
    try:
        async with exchange.db.transaction() as conn:
            await conn.execute(insert(audit_checkpoint).values(tree_size=size, head_hash=head, created=to_db(now),
                                                               jws=token))
    except IntegrityError:
        pass  # another process signed this tree size at the same moment: theirs is as good
    return await stored_checkpoint(exchange, size)  # type: ignore[return-value]


def signed_payload(token: str) -> dict:
    """The payload of a checkpoint JWS as it was signed, without checking the signature (`verify_checkpoint` does)."""
    try:
        payload = orjson.loads(jws.extract_compact(token.strip().encode()).payload)
    except (JoseError, ValueError, orjson.JSONDecodeError):
        raise BadCheckpoint("the checkpoint is not a compact JWS with a JSON payload") from None
    return payload if isinstance(payload, dict) else {}


def _from_row(row) -> Checkpoint:  # noqa: ANN001
    """The checkpoint as signed: its values from the JWS (an edited column changes nothing that is served)."""
    try:
        payload = signed_payload(row.jws)
    except BadCheckpoint:
        payload = {}
    return Checkpoint(payload.get("tree_size"), payload.get("head"), payload.get("time"), row.jws)


async def stored_checkpoint(exchange, tree_size: int | None = None) -> Checkpoint | None:  # noqa: ANN001
    """The checkpoint for `tree_size`, or the newest one when None."""
    query = select(audit_checkpoint)
    query = query.where(audit_checkpoint.c.tree_size == tree_size) if tree_size is not None else \
        query.order_by(audit_checkpoint.c.tree_size.desc()).limit(1)
    async with exchange.db.engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return _from_row(row) if row else None


async def all_checkpoints(exchange) -> list[Checkpoint]:  # noqa: ANN001
    async with exchange.db.engine.connect() as conn:
        rows = (await conn.execute(select(audit_checkpoint).order_by(audit_checkpoint.c.tree_size))).all()
    return [_from_row(r) for r in rows]


def verify_checkpoint(token: str, jwks: dict) -> dict:
    """The checkpoint's payload {iss, tree_size, head, time} after checking its signature against `jwks`."""
    try:
        found = jws.deserialize_compact(token.strip(), key_set(jwks), algorithms=["ES256"])
        payload = orjson.loads(found.payload)
    except (JoseError, ValueError, orjson.JSONDecodeError) as exc:
        raise BadCheckpoint(f"the checkpoint does not verify: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("tree_size"), int) or \
            not isinstance(payload.get("head"), str):
        raise BadCheckpoint("the checkpoint lacks tree_size and head")
    return payload


def install_periodic(exchange) -> None:  # noqa: ANN001
    """Sign a checkpoint every `audit_checkpoint_interval` seconds while the server runs (0 turns it off)."""
    from exchange.jobs import every

    exchange.jobs.append(every("audit-checkpoint", lambda ex: ex.settings.audit_checkpoint_interval, sign_checkpoint))
