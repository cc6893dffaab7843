"""The write-rule interface: what a rule sees of a write, and the follow-up changes it may ask for.

A write rule (the referral workflow, consent, the write-authority table, Subscriptions; register one with
`exchange.rules.append(rule)`) is an object with three async methods, all optional:

    async def check(self, change: Change, reads: Reads) -> None
        Before the write. Raise an exchange error (`exchange.errors`, or `exchange.referral.refusal.refuse`) to
        refuse it: nothing is stored and the refusal is recorded. Read what you need through `reads`. What it
        returns is ignored: a check never changes the body.

    async def complete(self, change: Change, reads: Reads) -> Mapping | None
        After every check passed, before the one store write: the server's own elements (e.g. a referral's
        deadlines, `exchange.referral.exchange_elements`). Return the body to store (a new dict built from
        `change.after`), or None to leave it as it is; the next rule's `complete` and every `follow` see the body
        returned. It runs for the exchange's own `Update`s too, so an element the server owns is kept by every
        write. Refuse in `check`, not here: by now every rule has accepted the change.

    async def follow(self, change: Change, reads: Reads) -> Sequence[FollowUp]
        After the write, in the same transaction (`change.stored` is the version written). Return what the exchange
        must do because of it: `Update` (a new version of a resource), `Unshare`/`Share` (who may see a resource),
        `Record` (one more event for the exchange log), `Rows` (rows of the rule's own tables). Return () when
        nothing follows. Write nothing yourself.

The kernel (`exchange.fhir.interactions.write`) applies the follow-ups in order, each `Update` as the exchange
itself (its own AuditEvent, whose agent is the exchange, linked to the request by its request id; versioned and
notified like any write) and then the rules' `follow` for that change in turn, depth first, before the next
follow-up. An `Update` is not `check`ed (the exchange may make any change) but is `complete`d; a rule is never
called from inside itself: there is no re-entry to guard against. A rule that reacts to its own follow-ups must
stop on its own (e.g. "only when the elements I depend on changed": `Change.changed`).

`Change` is immutable (frozen; `before` and `after` are read-only views: copy with `dict(change.after, ...)` to
make a new body). `Reads` is the unit's read cache (`exchange.store.repository.Repository`: a row read once is not
read again within the request) with the writer's access filter; its write methods are the kernel's, not a rule's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Protocol, Sequence, Union

from exchange.context import RequestContext
from exchange.store.repository import Repository
from exchange.store.values import StoredResource
from exchange.store.visibility import AccessFilter

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from exchange.kernel.exchange import Exchange


def frozen_view(body: Mapping | None) -> Mapping | None:
    return None if body is None else MappingProxyType(body) if not isinstance(body, MappingProxyType) else body


@dataclass(frozen=True)
class Change:
    """One write as the rules see it: before (the current version, None on a create), after (the new body, None on
    a delete), who makes it, and, once written, the stored versions."""
    resource_type: str
    method: str  # "POST" (create) | "PUT" (update) | "DELETE"
    before: Mapping | None
    after: Mapping | None
    who: RequestContext
    current: StoredResource | None = None  # the version the change replaces (None on a create)
    stored: StoredResource | None = None  # the version written (set for `follow`, None for `check`)
    if_match: int | None = None  # the If-Match version the writer sent (None: none, or the exchange's own change)

    @classmethod
    def of(cls, resource_type: str, method: str, current: StoredResource | None, after: Mapping | None,
           who: RequestContext, if_match: int | None = None) -> "Change":
        return cls(resource_type, method, frozen_view(current.resource) if current is not None else None,
                   frozen_view(after), who, current, None, if_match)

    @property
    def resource_id(self) -> str | None:
        if self.stored is not None:
            return self.stored.id
        return self.current.id if self.current is not None else None

    @property
    def created(self) -> bool:
        return self.before is None

    @property
    def deleted(self) -> bool:
        return self.after is None

    def changed(self, *elements: str) -> bool:
        """Whether any of `elements` differs between before and after (always true on a create or a delete)."""
        if self.before is None or self.after is None:
            return True
        return any(self.before.get(e) != self.after.get(e) for e in elements)


@dataclass(frozen=True)
class Reads:
    """What a rule may read: the unit's read cache and the writer's access filter (what `who` may see)."""
    repo: Repository
    access: AccessFilter
    exchange: "Exchange"
    conn: "AsyncConnection"  # for a rule's own tables (e.g. the notification queue); resource rows go via repo


@dataclass(frozen=True)
class Update:
    """Write `body` as the next version of `current`, as the exchange (`why`: for the reader of the code/log)."""
    current: StoredResource
    body: Mapping
    why: str = ""


@dataclass(frozen=True)
class Unshare:
    """The organisations lose access to the resource (its `resource_party` rows go)."""
    resource_type: str
    resource_id: str
    organizations: frozenset[str]


@dataclass(frozen=True)
class Share:
    """The organisations may see the resource (`resource_party` rows)."""
    resource_type: str
    resource_id: str
    organizations: frozenset[str]


@dataclass(frozen=True)
class Record:
    """One more event of the unit for the exchange log (and notifications), e.g. the emergency exception's use."""
    event: Any = field(compare=False)  # an exchange.kernel.unit.Event


@dataclass(frozen=True)
class Rows:
    """Rows of the rule's own tables, written in the request's transaction: `write(conn)`."""
    write: Callable[["AsyncConnection"], Awaitable[Any]] = field(compare=False)


FollowUp = Union[Update, Unshare, Share, Record, Rows]


class WriteRule(Protocol):
    async def check(self, change: Change, reads: Reads) -> None: ...

    async def complete(self, change: Change, reads: Reads) -> Mapping | None: ...

    async def follow(self, change: Change, reads: Reads) -> Sequence[FollowUp]: ...
