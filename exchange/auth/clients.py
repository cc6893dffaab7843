"""The client registry: which partner systems may ask for tokens, for which organisation, role and scopes.

A client is registered by the exchange's operator (CLI `exchange clients ...`, or `make run` for the demo). Its keys
are a public JWK Set given by value or a JWKS URL (fetched by `exchange.auth.jwks`). Disabling a client stops its
tokens at once: the bearer check reads the client's state on every request.

Separation of duties: no single role both manages credentials and reads referral content. An admin client may
register or re-key clients over HTTP, but such a client is `pending_by` that admin and unusable (no token; its live
tokens stop) until confirmed by a different admin client or on the server's CLI (`exchange clients confirm`).
"""
from __future__ import annotations

import json
import re
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import bindparam, delete, exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.auth.access import require_role
from exchange.auth.roles import ROLES
from exchange.auth.scopes import permissions
from exchange.context import RequestContext
from exchange.egress import EgressPolicy, EgressRefused
from exchange.errors import Conflict, Forbidden, NotFound, Unprocessable
from exchange.fhir.references import ID_PATTERN
from exchange.auth.tables import auth_client, auth_revoked_token, auth_used_jti
from exchange.store import direct
from exchange.store.clock import to_db, utcnow
from exchange.store.engine import Database
from exchange.store.repository import Repository

if TYPE_CHECKING:
    from exchange.kernel.exchange import Exchange

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


class ClientError(ValueError):
    """A registration that cannot be accepted (the CLI prints it)."""


class SecondPersonRequired(ClientError):
    """The admin that asked for a change cannot confirm it itself (403)."""


class NothingToConfirm(ClientError):
    """The client is not waiting for a confirmation (409)."""


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    organization_id: str
    role: str
    scopes: tuple[str, ...]
    jwks: dict | None
    jwks_url: str | None
    label: str | None
    active: bool
    created: datetime
    pending_by: str | None = None

    @property
    def usable(self) -> bool:
        """Whether the client may get and use tokens: enabled, and not waiting for a confirmation."""
        return self.active and self.pending_by is None

    def as_json(self) -> dict:
        return {"client_id": self.client_id, "organization": f"Organization/{self.organization_id}",
                "role": self.role, "scope": " ".join(self.scopes), "scopes": list(self.scopes), "active": self.active,
                "pending_confirmation": self.pending_by is not None, "requested_by": self.pending_by,
                "jwks_url": self.jwks_url, "kids": [k.get("kid") for k in (self.jwks or {}).get("keys", [])],
                "label": self.label, "created": self.created.isoformat()}


def _record(row) -> ClientRecord:  # noqa: ANN001  (a Row, or a mapping of its columns: exchange.store.direct)
    m = getattr(row, "_mapping", row)
    return ClientRecord(m["client_id"], m["organization_id"], m["role"], tuple(m["scopes"].split()),
                        json.loads(m["jwks"]) if m["jwks"] else None, m["jwks_url"], m["label"], m["active"],
                        m["created"], m["pending_by"])


def check_public_jwks(jwks: object) -> dict:
    """A JWK Set of public signing keys, each with a `kid`; private members or symmetric keys are refused."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ClientError("a JWK Set is a JSON object with a non-empty 'keys' array")
    kids = set()
    for key in jwks["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC", "OKP"):
            raise ClientError("every key must be an RSA, EC or OKP public key (kty)")
        if any(member in key for member in _PRIVATE_MEMBERS):
            raise ClientError(f"key '{key.get('kid')}' holds private material: register the public key only")
        if not isinstance(key.get("kid"), str) or not key["kid"]:
            raise ClientError("every key needs a 'kid' (SMART Backend Services)")
        if key["kid"] in kids:
            raise ClientError(f"kid '{key['kid']}' appears twice")
        kids.add(key["kid"])
    try:
        KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError) as exc:
        raise ClientError(f"the JWK Set cannot be read: {exc}") from None
    return jwks


def check_scopes(scopes: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(scopes.split()))
    if not items:
        raise ClientError("a client needs at least one scope, e.g. system/*.cruds")
    for scope in items:
        if permissions(scope) is None:
            raise ClientError(f"'{scope}' is not a SMART system scope such as system/Task.cruds or system/*.rs")
    return items


async def check_jwks_url(url: object, policy: EgressPolicy | None) -> str:
    """The egress policy at registration: the URL's name is resolved and every address checked (each fetch checks
    again)."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ClientError("jwks_url: a JWKS URL is an https:// URL")
    if policy is not None:
        try:
            await policy.check(url)
        except EgressRefused as exc:
            raise ClientError(f"jwks_url: the exchange does not call this JWKS URL: it {exc}") from None
    return url


@dataclass(frozen=True, slots=True)
class ClientState:
    """What the bearer check needs of a token's client, read on every request: who it acts for, what it may be
    granted, and whether it may act now. Not its keys: the check never uses them, and every request read the JWK
    Set and parsed its JSON."""
    client_id: str
    organization_id: str
    role: str
    scopes: tuple[str, ...]
    active: bool
    pending_by: str | None
    # what the statement read along for other packages (`Exchange.read_along`): not the client's, but the same row
    read_along: Mapping[str, object] = field(default_factory=dict, compare=False)

    @property
    def usable(self) -> bool:
        """As `ClientRecord.usable`: enabled, and not waiting for a confirmation."""
        return self.active and self.pending_by is None


_ALONG = "read_along_"  # (the labels of what the statement reads along, apart from the client's columns)


def _token_state(read_along: Mapping[str, Any]) -> direct.Statement:
    """The bearer check's one statement, built once per registry (its SQL and cache key are not rebuilt on every
    request; every request runs it: compiled once, run on the driver): the columns of ClientState, whether the
    token was revoked, and what other packages read along (`Exchange.read_along`)."""
    return direct.Statement(select(
        auth_client.c.client_id, auth_client.c.organization_id, auth_client.c.role, auth_client.c.scopes,
        auth_client.c.active, auth_client.c.pending_by,
        exists().where(auth_revoked_token.c.jti == bindparam("jti")).label("revoked"),
        *(expression.label(_ALONG + name) for name, expression in sorted(read_along.items()))
    ).where(auth_client.c.client_id == bindparam("client_id")))


class ClientRegistry:
    """Reads and writes `auth_client`, `auth_used_jti` and `auth_revoked_token`.

    Changes run in their own transaction, or in the caller's (`conn`, e.g. a unit of work that also records the
    change in the audit log).
    """

    def __init__(self, db: Database, jwks_policy: EgressPolicy | None = None,
                 read_along: Mapping[str, Any] | None = None):
        self.db = db
        self.jwks_policy = jwks_policy
        self.read_along = read_along if read_along is not None else {}  # (the exchange's: filled in after auth's)
        self._token_state: direct.Statement | None = None

    def _tx(self, conn: AsyncConnection | None):  # noqa: ANN202
        return nullcontext(conn) if conn is not None else self.db.transaction()

    async def add(self, organization_id: str, role: str, scopes: str, jwks: dict | None = None,
                  jwks_url: str | None = None, client_id: str | None = None, label: str | None = None,
                  conn: AsyncConnection | None = None, pending_by: str | None = None) -> ClientRecord:
        """Register a client; `pending_by` (an admin client over HTTP) leaves it waiting for a confirmation."""
        if role not in ROLES:
            raise ClientError(f"role must be one of {', '.join(ROLES)}")
        if (jwks is None) == (jwks_url is None):
            raise ClientError("give the client's keys either as a JWK Set (--jwks) or as a URL (--jwks-url)")
        items = check_scopes(scopes)
        jwks = check_public_jwks(jwks) if jwks is not None else None
        jwks_url = await check_jwks_url(jwks_url, self.jwks_policy) if jwks_url is not None else None
        client_id = client_id or uuid.uuid4().hex
        if not _CLIENT_ID.match(client_id):
            raise ClientError("a client id is 1 to 64 letters, digits, '.', '_' or '-'")
        if label is not None and len(label) > 200:
            raise ClientError("a label is at most 200 characters")
        now = to_db(utcnow())
        async with self._tx(conn) as conn:
            org = await Repository(conn).read("Organization", organization_id)
            if org is None or org.deleted:
                raise ClientError(f"Organization/{organization_id} is not in the directory")
            try:
                await conn.execute(insert(auth_client).values(
                    client_id=client_id, organization_id=organization_id, role=role, scopes=" ".join(items),
                    jwks=json.dumps(jwks) if jwks else None, jwks_url=jwks_url, label=label, active=True,
                    pending_by=pending_by, created=now, updated=now))
            except IntegrityError:
                raise ClientError(f"client '{client_id}' already exists") from None
            return await self._read(conn, client_id)

    async def get(self, client_id: str) -> ClientRecord | None:
        """The client, or None; an id no client can have (a NUL, over 64 characters) never reaches the database."""
        if not isinstance(client_id, str) or not ID_PATTERN.match(client_id):
            return None
        async with self.db.transaction() as conn:  # on SQLite: queue with the writers, never spin
            row = (await conn.execute(select(auth_client).where(auth_client.c.client_id == client_id))).first()
        return _record(row) if row else None

    async def _read(self, conn: AsyncConnection, client_id: str) -> ClientRecord:
        row = (await conn.execute(select(auth_client).where(auth_client.c.client_id == client_id))).first()
        if row is None:
            raise ClientError(f"no client '{client_id}'")
        return _record(row)

    async def list(self) -> list[ClientRecord]:
        async with self.db.transaction() as conn:  # on SQLite: queue with the writers, never spin
            rows = (await conn.execute(select(auth_client).order_by(auth_client.c.created, auth_client.c.client_id)
                                       )).all()
        return [_record(r) for r in rows]

    async def set_active(self, client_id: str, active: bool, conn: AsyncConnection | None = None
                         ) -> ClientRecord:
        async with self._tx(conn) as conn:
            result = await conn.execute(update(auth_client).where(auth_client.c.client_id == client_id)
                                        .values(active=active, updated=to_db(utcnow())))
            if result.rowcount != 1:
                raise ClientError(f"no client '{client_id}'")
            return await self._read(conn, client_id)

    async def set_keys(self, client_id: str, jwks: dict | None = None, jwks_url: str | None = None,
                       conn: AsyncConnection | None = None, pending_by: str | None = None) -> ClientRecord:
        """Replace the keys; `pending_by` (an admin client over HTTP) suspends the client until confirmed."""
        if (jwks is None) == (jwks_url is None):
            raise ClientError("give the new keys either as a JWK Set (--jwks) or as a URL (--jwks-url)")
        jwks = check_public_jwks(jwks) if jwks is not None else None
        jwks_url = await check_jwks_url(jwks_url, self.jwks_policy) if jwks_url is not None else None
        async with self._tx(conn) as conn:
            result = await conn.execute(update(auth_client).where(auth_client.c.client_id == client_id).values(
                jwks=json.dumps(jwks) if jwks else None, jwks_url=jwks_url, pending_by=pending_by,
                updated=to_db(utcnow())))
            if result.rowcount != 1:
                raise ClientError(f"no client '{client_id}'")
            return await self._read(conn, client_id)

    async def confirm(self, client_id: str, by: str | None, conn: AsyncConnection | None = None) -> ClientRecord:
        """Confirm a pending registration or re-key: by a different admin client (`by`), or the CLI (None)."""
        async with self._tx(conn) as conn:
            record = await self._read(conn, client_id)
            if record.pending_by is None:
                raise NothingToConfirm(f"client '{client_id}' is not waiting for a confirmation")
            if by is not None and by == record.pending_by:
                raise SecondPersonRequired("a change made over HTTP is confirmed by a second admin client or on the "
                                           "server's CLI (exchange clients confirm), not by the admin that made it")
            await conn.execute(update(auth_client).where(auth_client.c.client_id == client_id,
                                                         auth_client.c.pending_by == record.pending_by)
                               .values(pending_by=None, updated=to_db(utcnow())))
            return await self._read(conn, client_id)

    async def set_scopes(self, client_id: str, scopes: str, conn: AsyncConnection | None = None) -> ClientRecord:
        items = check_scopes(scopes)
        async with self._tx(conn) as conn:
            result = await conn.execute(update(auth_client).where(auth_client.c.client_id == client_id)
                                        .values(scopes=" ".join(items), updated=to_db(utcnow())))
            if result.rowcount != 1:
                raise ClientError(f"no client '{client_id}'")
            return await self._read(conn, client_id)

    # --- assertion replay and token revocation --------------------------------------------------------------
    async def remember_jti(self, client_id: str, jti: str, expires: datetime) -> bool:
        """Record an assertion's jti; False if it was already used (the primary key decides, across workers)."""
        now = to_db(utcnow())
        try:
            async with self.db.transaction() as conn:
                await conn.execute(delete(auth_used_jti).where(auth_used_jti.c.expires < now))
                await conn.execute(insert(auth_used_jti).values(client_id=client_id, jti=jti[:255],
                                                                expires=to_db(expires)))
        except IntegrityError:
            return False
        return True

    async def revoke_token(self, jti: str, client_id: str, expires: datetime) -> None:
        now = to_db(utcnow())
        async with self.db.transaction() as conn:
            await conn.execute(delete(auth_revoked_token).where(auth_revoked_token.c.expires < now))
            exists = (await conn.execute(select(auth_revoked_token.c.jti)
                                         .where(auth_revoked_token.c.jti == jti))).first()
            if not exists:
                await conn.execute(insert(auth_revoked_token).values(jti=jti, client_id=client_id,
                                                                     expires=to_db(expires)))

    async def token_state(self, client_id: str, jti: str, conn: AsyncConnection | None = None
                          ) -> tuple[ClientState | None, bool]:
        """The client behind a token and whether the token was revoked: one statement per request (in `conn`, the
        request's own transaction, when given), which also reads what the exchange's packages read along
        (`ClientState.read_along`)."""
        params = {"client_id": client_id, "jti": jti}
        statement = self._token_state
        if statement is None:  # (built at the first request: every package has registered what it reads by then)
            statement = self._token_state = _token_state(self.read_along)
        if conn is not None:
            row = await direct.fetchrow(conn, statement, params)
        else:
            async with self.db.read() as conn:  # (SQLite: not queued with the writers)
                row = await direct.fetchrow(conn, statement, params)
        if row is None:
            return None, False
        along = {name: row[_ALONG + name] for name in self.read_along}
        return ClientState(row["client_id"], row["organization_id"], row["role"], tuple(row["scopes"].split()),
                           bool(row["active"]), row["pending_by"], along), bool(row["revoked"])


async def audited_change(exchange: "Exchange", ctx: RequestContext, interaction: str,
                         work: Callable[[AsyncConnection], Awaitable[ClientRecord]]) -> ClientRecord:
    """Run a registry change as `ctx` (an admin client, or the exchange itself from the CLI) in a unit of work, so
    the change and its audit record (an exchange event on the client's Organization) commit together and a refusal
    is recorded too. Registry refusals become 404 (unknown client) or 422."""
    from exchange.kernel.unit import Event, open_unit

    async with open_unit(exchange, ctx, interaction) as unit:
        require_role(ctx, "admin")
        try:
            record = await work(unit.conn)
        except SecondPersonRequired as exc:
            raise Forbidden(str(exc), code="forbidden") from None
        except NothingToConfirm as exc:
            raise Conflict(str(exc)) from None
        except ClientError as exc:
            message = str(exc)
            raise (NotFound if message.startswith("no client") else Unprocessable)(message) from None
        unit.record(Event(interaction, "E", "Organization", record.organization_id))
    return record
