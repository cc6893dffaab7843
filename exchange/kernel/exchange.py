"""The running exchange: settings, database, and the hooks and rules that interactions call.

Built once by the app factory (or the CLI) and passed down explicitly; there are no module-level singletons.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from exchange.kernel.access import AccessPolicy, NoAccessPolicy
from exchange.kernel.change import WriteRule
from exchange.context import RequestContext
from exchange.keys import KeyStore
from exchange.settings import Settings
from exchange.store.engine import Database
from exchange.kernel.unit import UnitHook

__all__ = ["Exchange", "WriteRule"]


async def _no_authenticator(request: Any) -> RequestContext:
    raise RuntimeError("no authenticator: exchange.auth is not installed on this exchange (see exchange.main.build)")


@dataclass
class Exchange:
    """Everything an interaction needs besides the request. Packages register themselves in `exchange.main.build`.

    - hooks: see every unit of work before it commits (audit log, notification outbox);
    - rules: business rules around writes (referral workflow, consent): `exchange.kernel.change` says what they see and
      what they return;
    - routers: FastAPI routers mounted before the generic FHIR routes (token endpoint, AuditEvent, $status ...);
    - capability: functions that add to the CapabilityStatement (security, subscription topics ...);
    - on_start / on_stop: work that lives as long as each server process;
    - jobs: (start, stop) of background work that runs once per deployment (dispatcher, sweeps, the linker's
      periodic pass, checkpoints), in whichever process holds the lease (`exchange.jobs`).
    - access_policy: what the kernel and the FHIR interactions ask about access (`exchange.kernel.access`: the
      permission check, the store filter every unit of work reads with, what a caller is shown, who becomes a party
      after a write), registered by `auth.install`;
    - authenticate: the caller of an HTTP request (the bearer token check, registered by `auth.install`), which
      every route reaches through `exchange.kernel.caller.request_context`;
    - extensions: per-package services other code looks up by package name (auth: the client registry).
    - profile_checks: (resource type, body) -> issues of the published profiles that need no stored data, run by
      `$validate` (the referral profiles).
    - read_ahead: resource type -> (reference params, target types): an update or delete of that type reads the
      resource with the targets of those types its params name, in one statement (`Repository.read_ahead`), since
      its rules read them next (the write-authority rule: which organisation a Task's owner is).
    - read_along: name -> a scalar SQL expression the bearer check's one statement reads along (on PostgreSQL the
      first statement of the request's transaction), its value in the request's first unit (`Unit.read_along`):
      a package checks a per-process copy against the database without a statement of its own (notify: the
      subscriptions' generation).
    """
    settings: Settings
    db: Database
    keys: KeyStore
    hooks: list[UnitHook] = field(default_factory=list)
    rules: list[WriteRule] = field(default_factory=list)
    routers: list[Any] = field(default_factory=list)
    capability: list[Callable[[dict, "Exchange"], None]] = field(default_factory=list)
    on_start: list[Callable[["Exchange"], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[["Exchange"], Awaitable[None]]] = field(default_factory=list)
    jobs: list[tuple[Callable[["Exchange"], Awaitable[None]], Callable[["Exchange"], Awaitable[None]]]] = field(
        default_factory=list)
    extensions: dict[str, Any] = field(default_factory=dict)
    profile_checks: list[Callable[[str, dict], list[Any]]] = field(default_factory=list)
    read_ahead: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    read_along: dict[str, Any] = field(default_factory=dict)
    access_policy: AccessPolicy = field(default_factory=NoAccessPolicy)
    authenticate: Callable[[Any], Awaitable[RequestContext]] = _no_authenticator

    @classmethod
    def from_settings(cls, settings: Settings) -> "Exchange":
        db = Database(settings.database_url, settings.database_pool_size, settings.database_pool_timeout)
        return cls(settings=settings, db=db, keys=KeyStore(db, settings))
