"""The repository: the only code that reads and writes resource rows.

It stores each version whole, keeps the search-index and access-party rows of the current version, and applies the
caller's access filter inside every query (never after), so a resource an organisation may not see is simply absent.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence

import orjson
from sqlalchemy import and_, bindparam, delete, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.store.tables import (condition_lock, resource, resource_party, resource_recorder, resource_version,
                                   search_index)


_TICK = timedelta(microseconds=1)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_db(dt: datetime) -> datetime:
    """Store datetimes as naive UTC: the same on SQLite and PostgreSQL."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def from_db(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt


def fhir_instant(dt: datetime) -> str:
    return from_db(dt).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class IndexRow:
    param: str
    system: str | None = None
    value: str | None = None
    text: str | None = None
    date_start: datetime | None = None
    date_end: datetime | None = None


@dataclass(frozen=True)
class AccessFilter:
    """Restricts queries to resources whose party rows name `organization_id`. None means unrestricted."""
    organization_id: str | None = None
    types_without_filter: frozenset[str] = field(default_factory=frozenset)

    def applies_to(self, resource_type: str) -> bool:
        return self.organization_id is not None and resource_type not in self.types_without_filter


UNRESTRICTED = AccessFilter()


@dataclass
class StoredResource:
    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    content: str
    parsed: dict | None = field(default=None, repr=False, compare=False)

    @property
    def resource(self) -> dict:
        """The stored JSON, parsed once per stored version: read-only (copy it to make a changed body)."""
        if self.parsed is None:
            self.parsed = orjson.loads(self.content)
        return self.parsed

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"


def _stored(row) -> StoredResource:  # noqa: ANN001
    return StoredResource(row.resource_type, row.id, row.version_id, from_db(row.last_updated), row.deleted,
                          row.content)


_READ_WITH_PARTIES = (
    select(resource, resource_party.c.organization_id.label("party"), resource_recorder.c.organization_id.label("recorder"))
    .select_from(resource.outerjoin(resource_party, and_(resource_party.c.resource_type == resource.c.resource_type,
                                                         resource_party.c.resource_id == resource.c.id))
                 .outerjoin(resource_recorder, and_(resource_recorder.c.resource_type == resource.c.resource_type,
                                                    resource_recorder.c.resource_id == resource.c.id)))
    .where(resource.c.resource_type == bindparam("t"), resource.c.id == bindparam("i")))


# The writes, built once (a statement built per call costs its cache key and coercions on every request).
_INSERT_RESOURCE = insert(resource)
_INSERT_VERSION = insert(resource_version)
_INSERT_INDEX = insert(search_index)
_INSERT_PARTY = insert(resource_party)
_INSERT_RECORDER = insert(resource_recorder)
_MOVE_ROW = (update(resource)
             .where(resource.c.resource_type == bindparam("m_type"), resource.c.id == bindparam("m_id"),
                    resource.c.version_id == bindparam("m_from"))
             .values(version_id=bindparam("m_to"), last_updated=bindparam("m_at"), deleted=bindparam("m_deleted"),
                     content=bindparam("m_content")))
_UNINDEX_ONE = delete(search_index).where(search_index.c.resource_type == bindparam("u_type"),
                                          search_index.c.resource_id == bindparam("u_id"))
_UNINDEX_MANY = delete(search_index).where(tuple_(search_index.c.resource_type, search_index.c.resource_id)
                                           .in_(bindparam("u_keys", expanding=True)))


def visible_clause(table, resource_type: str, access: AccessFilter, id_column=None):  # noqa: ANN001
    """SQL condition: the row is visible under `access` (an EXISTS on resource_party)."""
    if not access.applies_to(resource_type):
        return None
    id_column = id_column if id_column is not None else table.c.id
    return exists().where(and_(resource_party.c.resource_type == resource_type,
                               resource_party.c.resource_id == id_column,
                               resource_party.c.organization_id == access.organization_id))


def with_meta(body: dict, resource_id: str, version_id: int, last_updated: datetime) -> dict:
    """The resource as stored: server-assigned id and meta.versionId/lastUpdated (other meta kept)."""
    meta = dict(body.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = fhir_instant(last_updated)
    out = {"resourceType": body["resourceType"], "id": resource_id, "meta": meta}
    for key, value in body.items():
        if key not in ("resourceType", "id", "meta"):
            out[key] = value
    return out


class Repository:
    """One per unit of work. It remembers the current version of what it read or wrote, party sets and reference
    lookups, so the rules of one request never read the same row twice. A filtered read of a row in memory asks only
    for its party set (once: party changes of the unit keep that set in step); of another row, it asks the database
    with the filter, and fills the memory for unfiltered reads of the same row. Reference lookups
    (`referring_ids`) are forgotten when the unit rewrites the index of that resource type.

    With `deferred` (a unit's repository), the version, index, party and recorder rows of its writes wait in memory
    and go to the database together, one statement a table for all the writes of the unit (`flush`): before any
    read of those tables through this repository (this repository's memory already holds its own), and before the
    unit's hooks run (`exchange.kernel.unit.open_unit`). The resource row itself is written at once: its version check
    decides a lost race there, and its key a duplicate id."""

    def __init__(self, conn: AsyncConnection, deferred: bool = False):
        self.conn = conn
        self.deferred = deferred
        self._versions: list[dict] = []  # version rows not yet written
        self._index: dict[tuple[str, str], list[dict]] = {}  # index rows not yet written, by resource
        self._unindex: dict[tuple[str, str], None] = {}  # resources whose stored index rows are to go (in order)
        self._fresh: set[tuple[str, str]] = set()  # created since the last flush: no index rows stored yet
        self._party_rows: dict[tuple[str, str], set[str]] = {}  # party rows not yet written, by resource
        self._recorder_rows: list[dict] = []  # recorder rows not yet written
        self._current: dict[tuple[str, str], StoredResource | None] = {}
        self._parties: dict[tuple[str, str], set[str]] = {}
        self._referring: dict[tuple[str, str, str, str], set[str]] = {}  # (type, param, target type, id) -> ids
        self._recorders: dict[tuple[str, str], str | None] = {}

    def _remember(self, stored: StoredResource) -> StoredResource:
        self._current[(stored.resource_type, stored.id)] = stored
        return stored

    async def flush(self) -> None:
        """Write the deferred rows: stored index rows out, then versions, index, party and recorder rows in."""
        unindex, versions, recorders = list(self._unindex), self._versions, self._recorder_rows
        index = [row for rows in self._index.values() for row in rows]
        parties = [{"resource_type": t, "resource_id": i, "organization_id": o}
                   for (t, i), orgs in self._party_rows.items() for o in sorted(orgs)]
        self._unindex, self._versions, self._index, self._fresh = {}, [], {}, set()
        self._party_rows, self._recorder_rows = {}, []
        if len(unindex) == 1:
            await self.conn.execute(_UNINDEX_ONE, {"u_type": unindex[0][0], "u_id": unindex[0][1]})
        elif unindex:
            await self.conn.execute(_UNINDEX_MANY, {"u_keys": unindex})
        if versions:
            await self.conn.execute(_INSERT_VERSION, versions)
        if index:
            await self.conn.execute(_INSERT_INDEX, index)
        if parties:
            await self.conn.execute(_INSERT_PARTY, parties)
        if recorders:
            await self.conn.execute(_INSERT_RECORDER, recorders)

    async def _flushed(self, index_of: str | None = None) -> None:
        """Flush before a read of the deferred tables; `index_of`: the read is of that type's index rows alone, so
        it waits only for rows of that type (a Bundle's Patient and Consent need not be written for its
        ServiceRequest's rules to look up other requests)."""
        if index_of is not None:
            if any(t == index_of for t, _ in self._index) or any(t == index_of for t, _ in self._unindex):
                await self.flush()
        elif self._versions or self._index or self._unindex or self._party_rows or self._recorder_rows:
            await self.flush()

    # --- reads -------------------------------------------------------------------------------------------------
    async def read(self, resource_type: str, resource_id: str, access: AccessFilter = UNRESTRICTED
                   ) -> StoredResource | None:
        filtered = access.applies_to(resource_type)  # (the party set read with the row decides: no clause built)
        key = (resource_type, resource_id)
        if key in self._current:
            if not filtered:
                return self._current[key]
            found = self._current[key]  # visibility from the party rows as this unit knows them (kept in step)
            return found if found is not None and access.organization_id in await self.parties(*key) else None
        # one statement: the row with its party set and recorder, so the rules that follow ask for neither again
        rows = (await self.conn.execute(_READ_WITH_PARTIES, {"t": resource_type, "i": resource_id})).all()
        found = _stored(rows[0]) if rows else None
        self._current[key] = found
        if found is not None:
            self._parties[key] = {r.party for r in rows if r.party is not None} | self._party_rows.get(key, set())
            self._recorders[key] = rows[0].recorder
        if filtered and (found is None or access.organization_id not in self._parties[key]):
            return None
        return found

    async def read_many(self, references: Iterable[tuple[str, str]], access: AccessFilter = UNRESTRICTED
                        ) -> list[StoredResource]:
        """Current, non-deleted versions of the given (type, id) pairs that `access` may see."""
        by_type: dict[str, set[str]] = {}
        for rtype, rid in references:
            by_type.setdefault(rtype, set()).add(rid)
        out: list[StoredResource] = []
        unfiltered: dict[str, list[str]] = {}  # asked for together, in one statement
        for rtype, ids in by_type.items():
            clause = visible_clause(resource, rtype, access)
            if clause is None:
                known = [self._current[(rtype, i)] for i in sorted(ids) if (rtype, i) in self._current]
                out.extend(k for k in known if k is not None and not k.deleted)
                missing = sorted(i for i in ids if (rtype, i) not in self._current)
                if missing:
                    unfiltered[rtype] = missing
                continue
            await self._flushed()  # (the filter reads the party rows)
            query = select(resource).where(resource.c.resource_type == rtype, resource.c.id.in_(sorted(ids)),
                                           resource.c.deleted.is_(False), clause)
            out.extend(self._remember(_stored(r)) for r in (await self.conn.execute(query)).all())
        if unfiltered:
            query = select(resource).where(or_(*(and_(resource.c.resource_type == t, resource.c.id.in_(ids))
                                                 for t, ids in unfiltered.items())))
            rows = [_stored(r) for r in (await self.conn.execute(query)).all()]
            for rtype, ids in unfiltered.items():
                for i in ids:
                    self._current.setdefault((rtype, i), None)  # (known not to exist)
            for row in rows:
                self._remember(row)
                if not row.deleted:
                    out.append(row)
        return out

    async def vread(self, resource_type: str, resource_id: str, version_id: int,
                    access: AccessFilter = UNRESTRICTED) -> StoredResource | None:
        await self._flushed()
        query = select(resource_version).where(resource_version.c.resource_type == resource_type,
                                               resource_version.c.id == resource_id,
                                               resource_version.c.version_id == version_id)
        clause = visible_clause(resource_version, resource_type, access)
        if clause is not None:
            query = query.where(clause)
        row = (await self.conn.execute(query)).first()
        return _stored(row) if row else None

    async def history(self, resource_type: str, resource_id: str, access: AccessFilter, count: int, offset: int
                      ) -> tuple[list[StoredResource], int]:
        await self._flushed()
        where = [resource_version.c.resource_type == resource_type, resource_version.c.id == resource_id]
        clause = visible_clause(resource_version, resource_type, access)
        if clause is not None:
            where.append(clause)
        total = (await self.conn.execute(select(func.count()).select_from(resource_version).where(*where))).scalar()
        rows = (await self.conn.execute(
            select(resource_version).where(*where).order_by(resource_version.c.version_id.desc())
            .limit(count).offset(offset))).all()
        return [_stored(r) for r in rows], int(total or 0)

    async def methods_of(self, resource_type: str, resource_id: str) -> dict[int, str]:
        await self._flushed()
        rows = (await self.conn.execute(
            select(resource_version.c.version_id, resource_version.c.method)
            .where(resource_version.c.resource_type == resource_type, resource_version.c.id == resource_id))).all()
        return {r.version_id: r.method for r in rows}

    async def search(self, resource_type: str, conditions: Sequence, order_by: Sequence, count: int, offset: int,
                     access: AccessFilter, with_total: bool = True) -> tuple[list[StoredResource], int | None]:
        await self._flushed()
        where = [resource.c.resource_type == resource_type, resource.c.deleted.is_(False), *conditions]
        clause = visible_clause(resource, resource_type, access)
        if clause is not None:
            where.append(clause)
        total = None
        if with_total:
            total = int((await self.conn.execute(select(func.count()).select_from(resource).where(*where))).scalar()
                        or 0)
        rows = (await self.conn.execute(select(resource).where(*where).order_by(*order_by).limit(count)
                                        .offset(offset))).all()
        return [_stored(r) for r in rows], total

    async def references_from(self, resource_type: str, ids: Sequence[str], param: str) -> list[tuple[str, str]]:
        """(target type, target id) of the reference index rows `param` of the given resources."""
        await self._flushed(index_of=resource_type)
        if not ids:
            return []
        rows = (await self.conn.execute(
            select(search_index.c.system, search_index.c.value)
            .where(search_index.c.resource_type == resource_type, search_index.c.param == param,
                   search_index.c.resource_id.in_(list(ids))))).all()
        return [(r.system, r.value) for r in rows if r.system and r.value]

    async def referring_ids(self, resource_type: str, param: str, targets: Sequence[tuple[str, str]]) -> list[str]:
        """Ids of `resource_type` resources whose reference param `param` points at one of `targets`."""
        await self._flushed(index_of=resource_type)
        if not targets:
            return []
        found: set[str] = set()
        for target_type in sorted({t for t, _ in targets}):
            ids = sorted({i for t, i in targets if t == target_type})
            keys = {i: (resource_type, param, target_type, i) for i in ids}
            missing = [i for i in ids if keys[i] not in self._referring]
            if missing:  # (remembered until this unit rewrites the index of `resource_type`)
                rows = (await self.conn.execute(
                    select(search_index.c.resource_id, search_index.c.value).where(
                        search_index.c.resource_type == resource_type, search_index.c.param == param,
                        search_index.c.system == target_type, search_index.c.value.in_(missing)))).all()
                for i in missing:
                    self._referring[keys[i]] = set()
                for r in rows:
                    self._referring[keys[r.value]].add(r.resource_id)
            for i in ids:
                found |= self._referring[keys[i]]
        return sorted(found)

    async def party_of_referral_to(self, organization_id: str, targets: Sequence[tuple[str, str]]) -> bool:
        """Whether `organization_id` is party to a Task (owner) or ServiceRequest (performer) naming one of
        `targets` (directory entries: who may see a confidential entry's address)."""
        await self._flushed()
        if not targets:
            return False
        named = or_(*[and_(search_index.c.system == t, search_index.c.value == i) for t, i in targets])
        query = select(search_index.c.resource_id).where(
            or_(and_(search_index.c.resource_type == "Task", search_index.c.param == "owner"),
                and_(search_index.c.resource_type == "ServiceRequest", search_index.c.param == "performer")),
            named, exists().where(and_(resource_party.c.resource_type == search_index.c.resource_type,
                                       resource_party.c.resource_id == search_index.c.resource_id,
                                       resource_party.c.organization_id == organization_id))).limit(1)
        return (await self.conn.execute(query)).first() is not None

    async def parties(self, resource_type: str, resource_id: str) -> set[str]:
        key = (resource_type, resource_id)
        if key not in self._parties:
            rows = (await self.conn.execute(select(resource_party.c.organization_id).where(
                resource_party.c.resource_type == resource_type, resource_party.c.resource_id == resource_id))).all()
            self._parties[key] = {r.organization_id for r in rows}
        return set(self._parties[key])

    async def recorder(self, resource_type: str, resource_id: str) -> str | None:
        """The organisation that created the resource (None: the exchange itself did, or it is not a referral's)."""
        key = (resource_type, resource_id)
        if key not in self._recorders:
            self._recorders[key] = (await self.conn.execute(select(resource_recorder.c.organization_id).where(
                resource_recorder.c.resource_type == resource_type, resource_recorder.c.resource_id == resource_id))
            ).scalar()
        return self._recorders[key]

    # --- writes ------------------------------------------------------------------------------------------------
    async def create(self, resource_type: str, resource_id: str, body: dict, index_rows: Iterable[IndexRow],
                     parties: Iterable[str] = (), now: datetime | None = None) -> StoredResource:
        now = now or utcnow()
        stored_body = with_meta(body, resource_id, 1, now)
        content = orjson.dumps(stored_body).decode()
        values = dict(resource_type=resource_type, id=resource_id, version_id=1, last_updated=to_db(now),
                      deleted=False, content=content)
        await self.conn.execute(_INSERT_RESOURCE, values)
        await self._keep_version(dict(values, method="POST"))
        if self.deferred:
            self._fresh.add((resource_type, resource_id))
        await self._write_index(resource_type, resource_id, index_rows)
        self._parties[(resource_type, resource_id)] = set()  # a new resource has no party rows yet
        await self.add_parties(resource_type, resource_id, parties)
        return self._remember(StoredResource(resource_type, resource_id, 1, now, False, content, stored_body))

    async def update(self, current: StoredResource, body: dict, index_rows: Iterable[IndexRow],
                     parties: Iterable[str] | None = None, now: datetime | None = None, method: str = "PUT"
                     ) -> StoredResource | None:
        """Write a new version on top of `current`. None if someone else wrote a version first (lost race)."""
        now = now or utcnow()
        if now <= current.last_updated:
            now = current.last_updated + _TICK
        version_id = current.version_id + 1
        stored_body = with_meta(body, current.id, version_id, now)
        content = orjson.dumps(stored_body).decode()
        if not await self._write_version(current, version_id, now, content, deleted=False, method=method):
            return None
        await self._delete_index(current.resource_type, current.id)
        await self._write_index(current.resource_type, current.id, index_rows)
        if parties is not None:
            await self.add_parties(current.resource_type, current.id, parties)
        return self._remember(StoredResource(current.resource_type, current.id, version_id, now, False, content,
                                             stored_body))

    async def delete(self, current: StoredResource, now: datetime | None = None) -> StoredResource | None:
        now = now or utcnow()
        if now <= current.last_updated:
            now = current.last_updated + _TICK
        version_id = current.version_id + 1
        tomb = {"resourceType": current.resource_type, "id": current.id,
                "meta": {"versionId": str(version_id), "lastUpdated": fhir_instant(now)}}
        content = orjson.dumps(tomb).decode()
        if not await self._write_version(current, version_id, now, content, deleted=True, method="DELETE"):
            return None
        await self._delete_index(current.resource_type, current.id)
        return self._remember(StoredResource(current.resource_type, current.id, version_id, now, True, content, tomb))

    async def _write_version(self, current: StoredResource, version_id: int, now: datetime, content: str,
                             deleted: bool, method: str) -> bool:
        """Move the current row to `version_id` if it is still at `current`'s version, and keep the version."""
        result = await self.conn.execute(_MOVE_ROW, {
            "m_type": current.resource_type, "m_id": current.id, "m_from": current.version_id, "m_to": version_id,
            "m_at": to_db(now), "m_deleted": deleted, "m_content": content})
        if result.rowcount != 1:
            return False
        await self._keep_version(dict(resource_type=current.resource_type, id=current.id, version_id=version_id,
                                      last_updated=to_db(now), deleted=deleted, content=content, method=method))
        return True

    async def _keep_version(self, values: dict) -> None:
        if self.deferred:
            self._versions.append(values)
        else:
            await self.conn.execute(_INSERT_VERSION, values)

    async def set_recorder(self, resource_type: str, resource_id: str, organization_id: str) -> None:
        self._recorders[(resource_type, resource_id)] = organization_id
        row = {"resource_type": resource_type, "resource_id": resource_id, "organization_id": organization_id}
        if self.deferred:
            self._recorder_rows.append(row)
        else:
            await self.conn.execute(_INSERT_RECORDER, row)

    async def add_parties(self, resource_type: str, resource_id: str, organization_ids: Iterable[str]) -> None:
        key = (resource_type, resource_id)
        missing = set(organization_ids) - await self.parties(resource_type, resource_id)
        if not missing:
            return
        self._parties[key] |= missing
        if self.deferred:
            self._party_rows.setdefault(key, set()).update(missing)
        else:
            await self.conn.execute(_INSERT_PARTY, [
                dict(resource_type=resource_type, resource_id=resource_id, organization_id=o) for o in sorted(missing)])

    async def remove_parties(self, resource_type: str, resource_id: str, organization_ids: Iterable[str]) -> None:
        await self.remove_parties_many([(resource_type, resource_id, organization_ids)])

    async def remove_parties_many(self, removals: Iterable[tuple[str, str, Iterable[str]]]) -> None:
        """Several resources' party rows in one statement: (type, id, organisations) each."""
        wanted = []
        for t, i, orgs in removals:
            orgs = set(orgs)
            known = self._parties.get((t, i))
            if known is not None:
                known -= orgs
            pending = self._party_rows.get((t, i))
            if pending:  # rows not written yet are simply not written (they are never in the database too)
                unwritten = pending & orgs
                pending -= unwritten
                orgs -= unwritten
            if orgs:
                wanted.append((t, i, sorted(orgs)))
        if not wanted:
            return
        await self.conn.execute(delete(resource_party).where(or_(*(
            and_(resource_party.c.resource_type == t, resource_party.c.resource_id == i,
                 resource_party.c.organization_id.in_(orgs)) for t, i, orgs in wanted))))

    async def lock_condition(self, resource_type: str, condition: str, dialect: str) -> None:
        """Upsert the condition's lock row: concurrent transactions with the same condition queue here."""
        key = hashlib.sha256(condition.encode()).hexdigest()
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = dialect_insert(condition_lock).values(resource_type=resource_type, condition=key, counter=1)
        stmt = stmt.on_conflict_do_update(index_elements=["resource_type", "condition"],
                                          set_={"counter": condition_lock.c.counter + 1})
        await self.conn.execute(stmt)

    async def _write_index(self, resource_type: str, resource_id: str, rows: Iterable[IndexRow]) -> None:
        payload = [dict(resource_type=resource_type, resource_id=resource_id, param=r.param, system=r.system,
                        value=r.value, text=r.text,
                        date_start=to_db(r.date_start) if r.date_start else None,
                        date_end=to_db(r.date_end) if r.date_end else None) for r in rows]
        self._forget_referring(resource_type)
        if self.deferred:
            self._index[(resource_type, resource_id)] = payload  # (replaces rows an earlier write left pending)
        elif payload:
            await self.conn.execute(_INSERT_INDEX, payload)

    def _forget_referring(self, resource_type: str) -> None:
        for key in [k for k in self._referring if k[0] == resource_type]:
            del self._referring[key]

    async def _delete_index(self, resource_type: str, resource_id: str) -> None:
        self._forget_referring(resource_type)
        key = (resource_type, resource_id)
        if not self.deferred:
            await self.conn.execute(_UNINDEX_ONE, {"u_type": resource_type, "u_id": resource_id})
            return
        self._index.pop(key, None)
        if key not in self._fresh:  # (rows of a resource created since the last flush were never stored)
            self._unindex[key] = None
