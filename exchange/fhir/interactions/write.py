"""The write path (the kernel of every write) shared by create, update, delete, transactions and the exchange's sweeps.

Asks the exchange's access policy (`exchange.kernel.access`) whether the writer may write at all, lets every write
rule `check` the change (`exchange.kernel.change`: before, after, who) and then `complete` it (the server's own
elements, on the exchange's own changes too), writes the version with its index rows, has the policy record who may
see it (only when the elements that decide it changed), records the event for the audit log and notifications, and then applies the rules' follow-up changes as the exchange itself:
each `Update` is written here like any other change, with the exchange as its actor, and its own follow-ups are
applied in turn (depth first). Rules never call back into this module.
"""
from __future__ import annotations

from dataclasses import replace as _with
from typing import Sequence

from exchange.kernel.change import Change, FollowUp, Reads, Record, Rows, Share, Unshare, Update, frozen_view
from exchange.context import RequestContext, system_context
from exchange.errors import Conflict, Forbidden, NotFound, PreconditionFailed, Unprocessable
from exchange.fhir.indexing import index_rows
from exchange.store.values import StoredResource
from exchange.kernel.unit import Event, Unit

MAX_FOLLOW_DEPTH = 8  # follow-ups of follow-ups: the referral rules settle in two; more is a rule that never stops


def parse_etag(value: str | None) -> int | None:
    """`W/"3"` or `"3"` -> 3. None when absent."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not (text.isascii() and text.isdigit() and len(text) <= 9):
        from exchange.errors import BadRequest

        raise BadRequest("If-Match must be a version ETag such as W/\"1\"", expression="If-Match")
    return int(text)


def _reads(unit: Unit, who: RequestContext) -> Reads:
    return Reads(unit.repo, unit.exchange.access_policy.filter(who), unit.exchange, unit.conn)


def _methods(unit: Unit, name: str) -> list:
    """The rules' `check` or `follow` methods, in registration order (both are optional)."""
    return [m for m in (getattr(rule, name, None) for rule in unit.exchange.rules) if m is not None]


async def _check(unit: Unit, change: Change) -> None:
    """Every rule's `check` (what it returns is ignored: a rule that wants elements stored says so in `complete`)."""
    reads = _reads(unit, change.who)
    for check in _methods(unit, "check"):
        await check(change, reads)


async def _complete(unit: Unit, change: Change, body: dict) -> tuple[Change, dict]:
    """Every rule's `complete`, after the checks and before the one store write: each may return the body with the
    server's own elements (e.g. the referral's deadlines); the next rule sees that body."""
    completes = _methods(unit, "complete")
    if not completes:
        return change, body
    reads = _reads(unit, change.who)
    for complete in completes:
        amended = await complete(change, reads)
        if amended is not None:
            body = dict(amended)
            change = _with(change, after=frozen_view(body))
    return change, body


async def _follow(unit: Unit, change: Change, depth: int) -> None:
    reads = _reads(unit, change.who)
    for follow in _methods(unit, "follow"):
        await _apply_all(unit, await follow(change, reads) or (), depth)


async def _apply_all(unit: Unit, items: Sequence[FollowUp], depth: int) -> None:
    pending: list[Unshare] = []  # consecutive removals go to the database in one statement
    for item in items:
        if isinstance(item, Unshare):
            pending.append(item)
            continue
        await _unshare(unit, pending)
        await _apply(unit, item, depth)
    await _unshare(unit, pending)


async def _unshare(unit: Unit, pending: list[Unshare]) -> None:
    if pending:
        await unit.repo.remove_parties_many([(u.resource_type, u.resource_id, u.organizations) for u in pending])
        pending.clear()


async def _apply(unit: Unit, item: FollowUp, depth: int) -> None:
    if isinstance(item, Update):
        if depth >= MAX_FOLLOW_DEPTH:
            raise RuntimeError(f"follow-up changes do not settle after {depth} rounds ({item.current.reference})")
        exchange = system_context(request_id=unit.ctx.request_id)  # the exchange, linked to the caller's request
        await _update(unit, exchange, item.current, dict(item.body), None, depth + 1, checked=False)
    elif isinstance(item, Unshare):
        await unit.repo.remove_parties(item.resource_type, item.resource_id, item.organizations)
    elif isinstance(item, Share):
        await unit.repo.add_parties(item.resource_type, item.resource_id, item.organizations)
    elif isinstance(item, Record):
        unit.record(item.event)
    elif isinstance(item, Rows):
        await item.write(unit.conn)
    else:
        raise TypeError(f"not a follow-up change: {type(item).__name__}")


async def apply_follow_ups(unit: Unit, items: Sequence[FollowUp]) -> None:
    """Apply follow-up changes outside a write (the exchange's own sweeps), as the kernel does after one."""
    await _apply_all(unit, items, 0)


def _actor(unit: Unit, who: RequestContext) -> RequestContext | None:
    return None if who is unit.ctx else who


async def insert_new(unit: Unit, resource_type: str, body: dict, resource_id: str | None = None) -> StoredResource:
    who = unit.ctx
    policy = unit.exchange.access_policy
    policy.check_permission(who, resource_type, "c")
    change = Change.of(resource_type, "POST", None, body, who)
    await _check(unit, change)
    change, body = await _complete(unit, change, body)
    resource_id = resource_id or unit.repo.new_id(resource_type)
    stored = await unit.repo.create(resource_type, resource_id, body, index_rows(resource_type, body))
    await policy.written(unit.repo, who, resource_type, resource_id, body, None)
    await _follow(unit, _with(change, after=frozen_view(body), stored=stored), 0)
    unit.record(Event("create", "C", resource_type, resource_id, 1, stored=stored))
    return stored


async def current_for_write(unit: Unit, resource_type: str, resource_id: str, if_match: int | None
                            ) -> StoredResource:
    ahead = unit.exchange.read_ahead.get(resource_type)
    current = await (unit.repo.read_ahead(resource_type, resource_id, unit.access, *ahead) if ahead is not None
                     else unit.repo.read(resource_type, resource_id, unit.access))
    if current is None or current.deleted:
        raise NotFound(f"{resource_type}/{resource_id} is not known", expression=f"{resource_type}.id")
    if if_match is not None and if_match != current.version_id:
        raise PreconditionFailed(f"If-Match version {if_match} is stale: {resource_type}/{resource_id} is at "
                                 f"version {current.version_id}", expression="If-Match")
    return current


async def replace(unit: Unit, current: StoredResource, body: dict, if_match: int | None) -> StoredResource:
    return await _update(unit, unit.ctx, current, body, if_match, 0, checked=True)


async def _update(unit: Unit, who: RequestContext, current: StoredResource, body: dict, if_match: int | None,
                  depth: int, checked: bool) -> StoredResource:
    policy = unit.exchange.access_policy
    policy.check_permission(who, current.resource_type, "u")
    change = Change.of(current.resource_type, "PUT", current, body, who, if_match)
    if checked:
        try:
            await _check(unit, change)
        except (Forbidden, Unprocessable):
            # The rules read the referral's other records after this one, each statement at its own moment: a
            # write that commits in between (a rival provider's claim) can refuse this one on a state its version
            # never had. When this resource has moved on meanwhile, the answer is the stale version's, as for a
            # write that loses the race at its UPDATE.
            stored_now = await unit.repo.stored_version(current.resource_type, current.id)
            if stored_now is not None and stored_now != current.version_id:
                raise _changed_meanwhile(current, if_match) from None
            raise
    change, body = await _complete(unit, change, body)
    # (a version another request wrote first refuses the unit when its row move is written: at the unit's flush)
    updated = await unit.repo.update(current, body, index_rows(current.resource_type, body),
                                     lost=_changed_meanwhile(current, if_match))
    await policy.written(unit.repo, who, current.resource_type, current.id, body, current.resource)
    await _follow(unit, _with(change, after=frozen_view(body), stored=updated), depth)
    unit.record(Event("update", "U", current.resource_type, current.id, updated.version_id, stored=updated,
                      previous=current, actor=_actor(unit, who)))
    return updated


def _changed_meanwhile(current: StoredResource, if_match: int | None) -> PreconditionFailed | Conflict:
    """The refusal of a write whose version another request replaced after this one read it: 412 when it was
    asked for by version (If-Match), else 409."""
    error = PreconditionFailed if if_match is not None else Conflict
    return error(f"{current.reference} was changed by another request; read it again and retry",
                 expression="If-Match" if if_match is not None else f"{current.resource_type}.meta.versionId")


async def remove(unit: Unit, current: StoredResource) -> StoredResource:
    unit.exchange.access_policy.check_permission(unit.ctx, current.resource_type, "d")
    change = Change.of(current.resource_type, "DELETE", current, None, unit.ctx)
    await _check(unit, change)
    deleted = await unit.repo.delete(current, lost=Conflict(
        f"{current.reference} was changed by another request; read it again and retry"))
    await _follow(unit, _with(change, stored=deleted), 0)
    unit.record(Event("delete", "D", current.resource_type, current.id, deleted.version_id, stored=deleted,
                      previous=current))
    return deleted
