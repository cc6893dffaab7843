"""Server-side sessions of signed-in staff, and their CSRF tokens.

The cookie carries a random token; the table keeps only its SHA-256, so a copy of the database opens no session.
A session ends when unused for `web_session_idle_seconds`, `web_session_absolute_seconds` after sign-in, on sign-out
or quick exit, and when the account is disabled. Each session has its own CSRF token, which every form carries.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update

from exchange.kernel.exchange import Exchange
from exchange.store.clock import from_db, to_db
from exchange.web.accounts import Staff, _staff
from exchange.web.tables import web_session, web_staff

TOUCH_AFTER = timedelta(seconds=15)  # last_seen is written at most this often (one write per request is waste)


@dataclass(frozen=True)
class Session:
    token: str
    staff: Staff
    csrf: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start(exchange: Exchange, staff: Staff, now: datetime) -> Session:
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    async with exchange.db.transaction() as conn:
        await conn.execute(insert(web_session).values(token_hash=_digest(token), staff_id=staff.id, csrf=csrf,
                                                      created=to_db(now), last_seen=to_db(now)))
    return Session(token, staff, csrf)


async def load(exchange: Exchange, token: str | None, now: datetime) -> Session | None:
    """The live session of `token`, or None (unknown, timed out, or its account disabled: then it is removed)."""
    if not token:
        return None
    digest = _digest(token)
    query = select(web_session, web_staff).join(web_staff, web_staff.c.id == web_session.c.staff_id) \
        .where(web_session.c.token_hash == digest)
    async with exchange.db.engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    settings = exchange.settings
    idle = from_db(row.last_seen) + timedelta(seconds=settings.web_session_idle_seconds) <= now
    spent = from_db(row.created) + timedelta(seconds=settings.web_session_absolute_seconds) <= now
    if idle or spent or not row.active:
        await end(exchange, token)
        return None
    if now - from_db(row.last_seen) >= TOUCH_AFTER:
        async with exchange.db.transaction() as conn:
            await conn.execute(update(web_session).where(web_session.c.token_hash == digest)
                               .values(last_seen=to_db(now)))
    return Session(token, _staff(row), row.csrf)


async def end(exchange: Exchange, token: str | None) -> None:
    if not token:
        return
    async with exchange.db.transaction() as conn:
        await conn.execute(delete(web_session).where(web_session.c.token_hash == _digest(token)))


def csrf_ok(session: Session, submitted: str | None) -> bool:
    return bool(submitted) and secrets.compare_digest(session.csrf, submitted)
