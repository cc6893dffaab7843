"""One request, one unit of work: the database transaction, who is acting, and what happened in it.

An interaction opens a unit, does its reads and writes through `unit.repo`, and records `Event`s. Before the
transaction commits, every registered hook sees the unit and adds its rows to it (`Unit.add_rows`: the audit log
its AuditEvents, the notifier its outbox rows), which the unit's final flush writes with the change's own, so a
change never commits without its record. When the interaction fails, the hooks are told in a
fresh transaction, after the failed one has rolled back (the refusal is recorded; nothing of the change remains).

A unit opened `read_only` (a read, a search, a review of the log: it changes nothing) writes nothing in its
transaction, which only reads (`Database.reading`): the hooks record what they must once it has ended, in
`after_commit` (or, refused, `after_failure`, with no transaction of its own), and the interaction answers only
when they are done: the audit log commits the records of many such units together (`exchange.audit.group_commit`).
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Iterable, Mapping, Protocol

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.context import RequestContext
from exchange.errors import FhirError
from exchange.store.repository import Repository
from exchange.store.values import StoredResource
from exchange.store.visibility import AccessFilter

if TYPE_CHECKING:
    from exchange.kernel.exchange import Exchange


@dataclass
class Event:
    """Something an interaction did to (or with) a resource. Carries no query values, only ids."""
    interaction: str  # create | read | vread | update | delete | search-type | history-instance | ...
    action: str  # C | R | U | D | E (FHIR AuditEvent action codes)
    resource_type: str | None = None
    resource_id: str | None = None
    version_id: int | None = None
    stored: StoredResource | None = None  # the version written or read
    previous: StoredResource | None = None  # the version replaced, for updates
    query: list[tuple[str, str]] | None = None  # search: (parameter, value) pairs as used
    actor: RequestContext | None = None  # who did it, when not the unit's caller: the exchange's follow-up changes
    purpose: tuple[dict, ...] = ()  # AuditEvent.purposeOfEvent codings (codes only), e.g. the emergency exception


@dataclass
class Unit:
    exchange: "Exchange"
    ctx: RequestContext
    conn: AsyncConnection
    interaction: str
    read_only: bool = False  # changes nothing: its hooks write after its transaction (`open_unit`)
    events: list[Event] = field(default_factory=list)
    # what the request's first statement read along with the bearer check (`Exchange.read_along`), in its first
    # unit only (`exchange.context.ReadAlong`); empty otherwise (the exchange's own units, a batch's later entries)
    read_along: Mapping[str, object] = field(default_factory=dict)
    _repo: Repository | None = field(default=None, repr=False)

    @property
    def repo(self) -> Repository:
        """The unit's one repository: what it read or wrote is read from the database once; the version and index
        rows of its writes go to the database together (`flush`)."""
        if self._repo is None:
            self._repo = Repository(self.conn, deferred=True)
        return self._repo

    async def flush(self) -> None:
        if self._repo is not None:
            await self._repo.flush()

    async def add_rows(self, table: Table, rows: Iterable[dict], echo: tuple[Table, str] | None = None) -> None:
        """Rows a hook adds to the unit (its AuditEvents, alerts, outbox rows): inserted in the unit's transaction
        with the unit's final flush (on PostgreSQL in its one statement), so they commit with the change or not at
        all. Every row of one table sets the same columns. `echo`: `exchange.store.writes.Pending.add_rows`."""
        await self.repo.add_rows(table, rows, echo)

    @property
    def dialect(self) -> str:
        return self.exchange.db.dialect

    @property
    def access(self) -> AccessFilter:
        """What the caller may see, by the access policy the exchange was built with (`auth.install`)."""
        return self.exchange.access_policy.filter(self.ctx)

    def record(self, event: Event) -> None:
        self.events.append(event)

    def check_wrote_nothing(self) -> None:
        """A read-only unit's records are not written with it: one that changed something would commit unrecorded."""
        changed = [e.interaction for e in self.events if e.action not in ("R", "E")]
        if changed or (self._repo is not None and self._repo.pending):
            raise RuntimeError(f"a read-only {self.interaction} unit wrote ({', '.join(changed) or 'rows'})")


@dataclass
class Failure:
    """A refused or failed interaction, as the hooks see it."""
    ctx: RequestContext
    interaction: str
    resource_type: str | None
    resource_id: str | None
    error: FhirError
    read_only: bool = False  # of a unit that changes nothing: told to the hooks' `after_failure` only


class UnitHook(Protocol):
    """`after_commit(unit)` and `after_failure(failure)` are optional: work that follows the commit (linking), and
    the records of a read-only unit."""

    async def before_commit(self, unit: Unit) -> None: ...

    async def on_failure(self, conn: AsyncConnection, failure: Failure) -> None: ...


@asynccontextmanager
async def open_unit(exchange: "Exchange", ctx: RequestContext, interaction: str, resource_type: str | None = None,
                    resource_id: str | None = None, read_only: bool = False) -> AsyncIterator[Unit]:
    try:
        opened = exchange.db.reading(ctx.begun) if read_only else exchange.db.transaction(ctx.begun)
        async with opened as conn:
            unit = Unit(exchange, ctx, conn, interaction, read_only,
                        read_along=ctx.read_along.take() if ctx.read_along is not None else {})
            yield unit
            for hook in exchange.hooks:  # (what they read through the unit's repository flushes what it needs first)
                await hook.before_commit(unit)
            if read_only:
                unit.check_wrote_nothing()
            await unit.flush()  # the unit's deferred rows and the rows its hooks added, together
    except FhirError as error:
        await record_failure(exchange, Failure(ctx, interaction, resource_type, resource_id, error, read_only))
        raise
    for hook in exchange.hooks:
        after = getattr(hook, "after_commit", None)
        if after is not None:
            await after(unit)


async def record_failure(exchange: "Exchange", failure: Failure) -> None:
    if not exchange.hooks:
        return
    if not failure.read_only:  # (a read-only unit's hooks wrote nothing: nothing to write in a transaction now)
        async with exchange.db.transaction() as conn:
            for hook in exchange.hooks:
                await hook.on_failure(conn, failure)
    for hook in exchange.hooks:
        after = getattr(hook, "after_failure", None)
        if after is not None:
            await after(failure)
