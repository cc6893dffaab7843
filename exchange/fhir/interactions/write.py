"""The write path shared by create, update, delete and transactions.

Checks the scope, runs the business rules (referral workflow, consent), writes the version with its index rows,
records who may see it, and records the event for the audit log and notifications.
"""
from __future__ import annotations

import uuid

from exchange.auth.access import REFERRAL_TYPES, assign_parties, check_permission, parties_changed
from exchange.errors import Conflict, NotFound, PreconditionFailed
from exchange.fhir.indexing import index_rows
from exchange.store.repository import StoredResource
from exchange.unit import Event, Unit


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


def new_id() -> str:
    return str(uuid.uuid4())


async def insert_new(unit: Unit, resource_type: str, body: dict, resource_id: str | None = None) -> StoredResource:
    check_permission(unit.ctx, resource_type, "c")
    for rule in unit.exchange.rules:
        await rule.before_write(unit, resource_type, body, None, "POST")
    resource_id = resource_id or new_id()
    stored = await unit.repo.create(resource_type, resource_id, body, index_rows(resource_type, body))
    if unit.ctx.organization_id and resource_type in REFERRAL_TYPES:
        await unit.repo.set_recorder(resource_type, resource_id, unit.ctx.organization_id)
    await assign_parties(unit.repo, unit.ctx, resource_type, resource_id, body)
    for rule in unit.exchange.rules:
        await rule.after_write(unit, stored, None)
    unit.record(Event("create", "C", resource_type, resource_id, 1, stored=stored))
    return stored


async def current_for_write(unit: Unit, resource_type: str, resource_id: str, if_match: int | None
                            ) -> StoredResource:
    current = await unit.repo.read(resource_type, resource_id, unit.access)
    if current is None or current.deleted:
        raise NotFound(f"{resource_type}/{resource_id} is not known", expression=f"{resource_type}.id")
    if if_match is not None and if_match != current.version_id:
        raise PreconditionFailed(f"If-Match version {if_match} is stale: {resource_type}/{resource_id} is at "
                                 f"version {current.version_id}", expression="If-Match")
    return current


async def replace(unit: Unit, current: StoredResource, body: dict, if_match: int | None) -> StoredResource:
    check_permission(unit.ctx, current.resource_type, "u")
    unit.if_match = if_match
    for rule in unit.exchange.rules:
        await rule.before_write(unit, current.resource_type, body, current, "PUT")
    updated = await unit.repo.update(current, body, index_rows(current.resource_type, body))
    if updated is None:
        error = PreconditionFailed if if_match is not None else Conflict
        raise error(f"{current.reference} was changed by another request; read it again and retry",
                    expression="If-Match" if if_match is not None else f"{current.resource_type}.meta.versionId")
    if parties_changed(current.resource_type, current.resource, body):
        await assign_parties(unit.repo, unit.ctx, current.resource_type, current.id, body)
    for rule in unit.exchange.rules:
        await rule.after_write(unit, updated, current)
    unit.record(Event("update", "U", current.resource_type, current.id, updated.version_id, stored=updated,
                      previous=current))
    return updated


async def remove(unit: Unit, current: StoredResource) -> StoredResource:
    check_permission(unit.ctx, current.resource_type, "d")
    for rule in unit.exchange.rules:
        await rule.before_write(unit, current.resource_type, {}, current, "DELETE")
    deleted = await unit.repo.delete(current)
    if deleted is None:
        raise Conflict(f"{current.reference} was changed by another request; read it again and retry")
    unit.record(Event("delete", "D", current.resource_type, current.id, deleted.version_id, stored=deleted,
                      previous=current))
    return deleted
