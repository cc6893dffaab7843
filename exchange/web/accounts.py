"""Staff accounts: people of an organisation who use the web inbox (caseworker, supervisor, auditor).

Created and disabled by an administrator on the server (`exchange staff ...`), never over the web. A password is
kept only as an argon2id hash; every account has a TOTP second factor, enrolled when it is created. Sign-in checks
both; failures are counted per account, and after `web_lockout_failures` in a row the account is locked for
`web_lockout_seconds`, whatever is typed. Each staff role acts in the exchange as one client role (`ACTS_AS`), so
every web action passes the same access rules as the API, with the person named in the log.
"""
from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from exchange.context import RequestContext, system_context
from exchange.errors import FhirError
from exchange.kernel.exchange import Exchange
from exchange.settings import Settings
from exchange.store.clock import from_db, to_db, utcnow
from exchange.kernel.unit import Event, open_unit
from exchange.web.i18n import LOCALES
from exchange.web.tables import web_session, web_staff

ROLES = ("caseworker", "supervisor", "auditor")
# staff role -> (client role, scopes) it acts with in the exchange
ACTS_AS = {"caseworker": ("partner", "system/*.cruds"), "supervisor": ("partner", "system/*.cruds"),
           "auditor": ("auditor", "system/*.rs")}
WEB_CLIENT = "exchange-web"  # the client the log names as the source of web actions
ISSUER = "GBV referral exchange"
MIN_PASSWORD = 12
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
STEP = 30  # seconds per TOTP code


class StaffError(ValueError):
    """A refused staff change (message names the rule, never a password)."""


@dataclass(frozen=True)
class Staff:
    id: str
    username: str
    organization_id: str
    role: str
    locale: str | None
    active: bool

    def context(self, remote_addr: str | None = None, request_id: str | None = None) -> RequestContext:
        """The request context of this person: their organisation, their role's client role, their id in the log."""
        role, scopes = ACTS_AS[self.role]
        return RequestContext(client_id=WEB_CLIENT, organization_id=self.organization_id, role=role,
                              scopes=frozenset(scopes.split()), remote_addr=remote_addr, request_id=request_id,
                              user_id=f"staff/{self.id}")

    def as_json(self) -> dict:
        return {"id": self.id, "username": self.username, "organization": self.organization_id, "role": self.role,
                "locale": self.locale, "active": self.active}


def _staff(row) -> Staff:  # noqa: ANN001
    return Staff(row.id, row.username, row.organization_id, row.role, row.locale, bool(row.active))


def hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(time_cost=settings.web_argon2_time_cost, memory_cost=settings.web_argon2_memory_kib,
                          parallelism=1)


def provisioning_uri(username: str, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def check_password_rule(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"a password needs at least {MIN_PASSWORD} characters")


async def _audited(exchange: Exchange, interaction: str, organization_id: str, work):  # noqa: ANN001, ANN202
    """A staff change by the exchange's administrator: the change and its audit record commit together."""
    async with open_unit(exchange, system_context(), interaction) as unit:
        result = await work(unit.conn)
        unit.record(Event(interaction, "E", "Organization", organization_id))
    return result


async def add_staff(exchange: Exchange, username: str, organization_id: str, role: str, password: str,
                    locale: str | None = None) -> tuple[Staff, str]:
    """Create an account; returns it with its new TOTP secret (shown once, to enrol the person's authenticator)."""
    if not _USERNAME.match(username):
        raise StaffError("a username is 3-64 characters: lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise StaffError(f"role must be one of {', '.join(ROLES)}")
    if locale is not None and locale not in LOCALES:
        raise StaffError(f"locale must be one of {', '.join(LOCALES)}")
    check_password_rule(password)
    from exchange.fhir.interactions import read

    try:
        await read.read(exchange, system_context(), "Organization", organization_id)
    except FhirError:
        raise StaffError("no Organization with that id in the directory") from None
    secret = pyotp.random_base32()
    password_hash = hasher(exchange.settings).hash(password)
    now = to_db(utcnow())
    staff_id = str(uuid.uuid4())

    async def work(conn):  # noqa: ANN001, ANN202
        await conn.execute(insert(web_staff).values(
            id=staff_id, username=username, organization_id=organization_id, role=role, password_hash=password_hash,
            totp_secret=secret, locale=locale, active=True, failures=0, created=now, updated=now))
        return Staff(staff_id, username, organization_id, role, locale, True)

    try:
        staff = await _audited(exchange, "staff-add", organization_id, work)
    except IntegrityError:
        raise StaffError("that username is taken") from None
    return staff, secret


async def set_active(exchange: Exchange, username: str, active: bool) -> Staff:
    """Disable (or enable) an account; disabling ends its sessions at once."""
    found = await find(exchange, username)
    if found is None:
        raise StaffError("no staff account with that username")

    async def work(conn):  # noqa: ANN001, ANN202
        await conn.execute(update(web_staff).where(web_staff.c.id == found.id).values(
            active=active, failures=0, locked_until=None, updated=to_db(utcnow())))
        if not active:
            await conn.execute(delete(web_session).where(web_session.c.staff_id == found.id))
        return found

    await _audited(exchange, "staff-enable" if active else "staff-disable", found.organization_id, work)
    return Staff(found.id, found.username, found.organization_id, found.role, found.locale, active)


async def find(exchange: Exchange, username: str) -> Staff | None:
    async with exchange.db.engine.connect() as conn:
        row = (await conn.execute(select(web_staff).where(web_staff.c.username == username))).first()
    return _staff(row) if row else None


async def list_staff(exchange: Exchange, organization_id: str | None = None) -> list[Staff]:
    query = select(web_staff).order_by(web_staff.c.organization_id, web_staff.c.username)
    if organization_id:
        query = query.where(web_staff.c.organization_id == organization_id)
    async with exchange.db.engine.connect() as conn:
        return [_staff(r) for r in (await conn.execute(query)).all()]


class SignInRefused(Exception):
    """Wrong username, password or code, a disabled account, or a locked one: the person is told only that."""

    def __init__(self, staff: Staff | None, failures: int):
        super().__init__("sign-in refused")
        self.staff = staff
        self.failures = failures


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The TOTP time step `code` belongs to (the current one or a neighbour, for clock drift), or None."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    step = int(now.timestamp()) // STEP
    for candidate in (step, step - 1, step + 1):
        if secrets.compare_digest(totp.at(candidate * STEP), code):
            return candidate
    return None


_DUMMY: dict[tuple[int, int], str] = {}


def _dummy_hash(settings: Settings) -> str:
    """A hash to verify against when the username is unknown, so that answer takes as long as a wrong password."""
    key = (settings.web_argon2_time_cost, settings.web_argon2_memory_kib)
    if key not in _DUMMY:
        _DUMMY[key] = hasher(settings).hash(secrets.token_urlsafe(16))
    return _DUMMY[key]


async def authenticate(exchange: Exchange, username: str, password: str, code: str, now: datetime) -> Staff:
    """The account, if password and TOTP code are right and it is active and not locked; else SignInRefused."""
    settings = exchange.settings
    ph = hasher(settings)
    async with exchange.db.engine.connect() as conn:
        row = (await conn.execute(select(web_staff).where(web_staff.c.username == username.strip().lower()))
               ).first()
    if row is None:
        try:
            ph.verify(_dummy_hash(settings), password)
        except VerificationError:
            pass
        raise SignInRefused(None, 1)
    staff = _staff(row)
    if row.locked_until is not None and from_db(row.locked_until) > now:
        raise SignInRefused(staff, settings.web_lockout_failures)
    try:
        password_ok = ph.verify(row.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        password_ok = False
    step = _matching_step(row.totp_secret, code, now) if password_ok else None
    fresh = step is not None and (row.totp_last_step is None or step > row.totp_last_step)
    if not (password_ok and fresh and staff.active):
        failures = row.failures + 1
        values: dict = {"failures": failures, "updated": to_db(now)}
        if failures >= settings.web_lockout_failures:
            values.update(failures=0, locked_until=to_db(now + timedelta(seconds=settings.web_lockout_seconds)))
        async with exchange.db.transaction() as conn:
            await conn.execute(update(web_staff).where(web_staff.c.id == row.id).values(**values))
        raise SignInRefused(staff, failures)
    values = {"failures": 0, "locked_until": None, "totp_last_step": step, "updated": to_db(now)}
    if ph.check_needs_rehash(row.password_hash):
        values["password_hash"] = ph.hash(password)
    async with exchange.db.transaction() as conn:
        # the step guard makes a code accepted once, even when two sign-ins with it arrive together
        done = await conn.execute(update(web_staff).where(
            web_staff.c.id == row.id,
            (web_staff.c.totp_last_step.is_(None)) | (web_staff.c.totp_last_step < step)).values(**values))
    if done.rowcount != 1:
        raise SignInRefused(staff, 1)
    return staff
