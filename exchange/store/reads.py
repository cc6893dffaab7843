"""The store's reads: one resource, several, a version, a history, a search, and the index and party lookups the
rules make, each with the caller's access filter inside the query (never after)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence

from sqlalchemy import String, and_, bindparam, exists, func, or_, select, union
from sqlalchemy.sql.util import ClauseAdapter

from exchange.store import direct
from exchange.store.clock import to_db
from exchange.store.tables import resource, resource_party, resource_recorder, resource_version, search_index
from exchange.store.values import StoredResource, stored
from exchange.store.visibility import UNRESTRICTED, AccessFilter, visible_clause
from exchange.store.writes import UnitMemory


_READ_WITH_PARTIES = (
    select(resource, resource_party.c.organization_id.label("party"), resource_recorder.c.organization_id.label("recorder"))
    .select_from(resource.outerjoin(resource_party, and_(resource_party.c.resource_type == resource.c.resource_type,
                                                         resource_party.c.resource_id == resource.c.id))
                 .outerjoin(resource_recorder, and_(resource_recorder.c.resource_type == resource.c.resource_type,
                                                    resource_recorder.c.resource_id == resource.c.id)))
    .where(resource.c.resource_type == bindparam("t"), resource.c.id == bindparam("i")))
_READ_BY_ID = direct.Statement(_READ_WITH_PARTIES)  # most requests read by id: compiled once, run on the driver
_STORED_VERSION = direct.Statement(select(resource.c.version_id).where(
    resource.c.resource_type == bindparam("t"), resource.c.id == bindparam("i")))
_READ_AHEAD: dict[tuple[int, int], direct.Statement] = {}  # by (params, target types): compiled once each


def _read_ahead_statement(params: int, target_types: int) -> direct.Statement:
    """`Reads.read_ahead`'s statement: the keys (the resource's own, and the targets its index rows name), each
    row with its party set and recorder as `_READ_WITH_PARTIES` reads one."""
    statement = _READ_AHEAD.get((params, target_types))
    if statement is None:
        keys = union(
            select(bindparam("t", type_=String).label("t"), bindparam("i", type_=String).label("i")),
            select(search_index.c.system, search_index.c.value).where(
                search_index.c.resource_type == bindparam("t"), search_index.c.resource_id == bindparam("i"),
                search_index.c.param.in_([bindparam(f"p{n}") for n in range(params)]),
                search_index.c.system.in_([bindparam(f"y{n}") for n in range(target_types)]))).subquery("k")
        statement = _READ_AHEAD[(params, target_types)] = direct.Statement(
            select(resource, resource_party.c.organization_id.label("party"),
                   resource_recorder.c.organization_id.label("recorder"))
            .select_from(keys.join(resource, and_(resource.c.resource_type == keys.c.t, resource.c.id == keys.c.i))
                         .outerjoin(resource_party, and_(resource_party.c.resource_type == resource.c.resource_type,
                                                         resource_party.c.resource_id == resource.c.id))
                         .outerjoin(resource_recorder, and_(
                             resource_recorder.c.resource_type == resource.c.resource_type,
                             resource_recorder.c.resource_id == resource.c.id))))
    return statement


class Reads(UnitMemory):
    """The read half of `exchange.store.repository.Repository` (the state both halves share: `UnitMemory`); a read
    of the deferred tables first writes what the unit deferred (`Writes._flushed`)."""

    def _remember(self, found: StoredResource) -> StoredResource:
        self._current[(found.resource_type, found.id)] = found
        return found

    async def stored_version(self, resource_type: str, resource_id: str) -> int | None:
        """The version stored now, committed by whoever (not this unit's memory of it), with this unit's own rows
        not written yet (`Pending.moved_to`): None when there is none."""
        rows = await direct.fetch(self.conn, _STORED_VERSION, {"t": resource_type, "i": resource_id})
        return self._pending.moved_to((resource_type, resource_id), int(rows[0]["version_id"]) if rows else None)

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
        found = self._keep_read(key, await direct.fetch(self.conn, _READ_BY_ID, {"t": resource_type, "i": resource_id}))
        if filtered and (found is None or access.organization_id not in self._parties[key]):
            return None
        return found

    def _keep_read(self, key: tuple[str, str], rows: list) -> StoredResource | None:
        """The row of `key` read with its party set and recorder (`rows`: one a party, none if there is no such
        resource), remembered for the unit's later reads."""
        found = stored(rows[0]) if rows else None
        self._current[key] = found
        if found is not None:
            stored_parties = {r["party"] for r in rows if r["party"] is not None}
            self._parties[key] = (self._pending.stored_parties(key, stored_parties)
                                  | self._pending.parties.get(key, set()))
            self._recorders[key] = rows[0]["recorder"]
        return found

    async def read_ahead(self, resource_type: str, resource_id: str, access: AccessFilter,
                         params: Sequence[str], target_types: Sequence[str]) -> StoredResource | None:
        """`read`, and in the same statement the current rows (with party sets and recorders) of the resources of
        `target_types` that its reference index rows `params` name: a write's rules read them next (the
        write-authority rule asks which organisation a Task's owner is), so they are remembered for this unit's
        reads instead of read one statement each. Rows this unit already knows are kept as it knows them."""
        key = (resource_type, resource_id)
        if key in self._current:  # (one this unit has not touched: its stored index rows are its current version's)
            return await self.read(resource_type, resource_id, access)
        values = {"t": resource_type, "i": resource_id, **{f"p{n}": p for n, p in enumerate(params)},
                  **{f"y{n}": t for n, t in enumerate(target_types)}}
        by_key: dict[tuple[str, str], list] = {}
        for row in await direct.fetch(self.conn, _read_ahead_statement(len(params), len(target_types)), values):
            by_key.setdefault((row["resource_type"], row["id"]), []).append(row)
        for other, rows in by_key.items():
            if other != key and other not in self._current:
                self._keep_read(other, rows)
        found = self._keep_read(key, by_key.get(key, []))
        if access.applies_to(resource_type) and (found is None or access.organization_id not in self._parties[key]):
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
            out.extend(self._remember(stored(r)) for r in (await self.conn.execute(query)).all())
        if unfiltered:
            query = select(resource).where(or_(*(and_(resource.c.resource_type == t, resource.c.id.in_(ids))
                                                 for t, ids in unfiltered.items())))
            rows = [stored(r) for r in (await self.conn.execute(query)).all()]
            for rtype, ids in unfiltered.items():
                for i in ids:
                    self._current.setdefault((rtype, i), None)  # (known not to exist)
            for row in rows:
                self._remember(row)
                if not row.deleted:
                    out.append(row)
        return out

    async def every(self, resource_type: str, after: str = "", limit: int = 1000) -> list[StoredResource]:
        """A page of the current version of every resource of the type, deleted ones too, unfiltered, in id order
        after `after` (retention's scan: a page at a time, however large the store)."""
        await self._flushed()
        rows = (await self.conn.execute(
            select(resource).where(resource.c.resource_type == resource_type, resource.c.id > after)
            .order_by(resource.c.id).limit(limit))).all()
        return [stored(r) for r in rows]

    async def changed_since(self, resource_type: str, since: datetime) -> list[StoredResource]:
        """The current version of every resource of the type written at or after `since` and not deleted,
        unfiltered (retention's look at what changed while it ran; what it purged meanwhile is deleted)."""
        await self._flushed()
        rows = (await self.conn.execute(select(resource).where(
            resource.c.resource_type == resource_type, resource.c.last_updated >= to_db(since),
            resource.c.deleted.is_(False)))).all()
        return [stored(r) for r in rows]

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
        return stored(row) if row else None

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
        return [stored(r) for r in rows], int(total or 0)

    async def methods_of(self, resource_type: str, resource_id: str) -> dict[int, str]:
        await self._flushed()
        rows = (await self.conn.execute(
            select(resource_version.c.version_id, resource_version.c.method)
            .where(resource_version.c.resource_type == resource_type, resource_version.c.id == resource_id))).all()
        return {r.version_id: r.method for r in rows}

    async def search(self, resource_type: str, conditions: Sequence, order_by: Sequence, count: int, offset: int,
                     access: AccessFilter, with_total: bool = True, first_by=None  # noqa: ANN001
                     ) -> tuple[list[StoredResource], int | None]:
        """A page of the resources matching `conditions` in `order_by`. `first_by`: the leading key of `order_by`
        as an index yields it in order (`exchange.fhir.search_sql.plan_search`); on PostgreSQL the page is then
        taken from the first `offset + count` rows by that key alone, ties included (FETCH FIRST ... WITH TIES):
        the same page, but the database reads the index in order and stops instead of sorting every match (it
        would, estimating few rows, to order ties by the next key).

        The total (`with_total`) is counted only when the page cannot tell it: a page of fewer than `count` rows
        holds the last of the matches (the rows are the matches from `offset` on, in order), so, unless it is an
        empty page past the end, the total is `offset` and its rows; an inbox's first page is most often so."""
        await self._flushed()
        where = _where(resource_type, conditions, visible_clause(resource, resource_type, access))
        page = count_query = None
        if count > 0:
            page = _page(where, order_by, first_by, self.conn.dialect.name == "postgresql")
        if with_total:
            count_query = _count(where)

        async def rows_of(statement, params: dict) -> list:  # noqa: ANN001
            return (await self.conn.execute(statement, params)).mappings().all()

        return await self._page_and_total(page, count_query, rows_of, count, offset, {})

    async def search_shaped(self, resource_type: str, shaped: "Shaped", count: int, offset: int,
                            access: AccessFilter, with_total: bool = True) -> tuple[list[StoredResource], int | None]:
        """`search` of a query whose statement depends only on its shape (`Shaped`): compiled once per shape, the
        caller's access filter and the paging (`_SHAPED`), and run on the driver with this search's values, so a
        search of a known shape builds, compiles and caches no SQLAlchemy statement at all."""
        await self._flushed()
        postgres = self.conn.dialect.name == "postgresql"
        filtered = access.applies_to(resource_type)
        key = (resource_type, shaped.shape, type(access) if filtered else None, postgres)
        statements = _SHAPED.get(key)
        if statements is None:
            conditions, order_by, first_by = shaped.build()
            bound = replace(access, organization_id=bindparam(_VIEWER)) if filtered else UNRESTRICTED
            where = _where(resource_type, conditions, visible_clause(resource, resource_type, bound))
            if shaped.counted is None:
                count_query = _count(where)
            else:  # the matches counted off their index rows alone (`Shaped.counted`)
                table, counted, id_column = shaped.counted()
                clause = visible_clause(table, resource_type, bound, id_column)
                count_query = select(func.count().label("total")).select_from(table).where(
                    *counted, *([] if clause is None else [clause]))
            statements = _SHAPED.setdefault(key, (direct.Statement(_page(where, order_by, first_by, postgres)),
                                                  direct.Statement(count_query)))
        params = dict(shaped.params)
        if filtered:
            params[_VIEWER] = access.organization_id

        async def rows_of(statement, values: dict) -> list:  # noqa: ANN001
            return await direct.fetch(self.conn, statement, values)

        return await self._page_and_total(statements[0] if count > 0 else None,
                                          statements[1] if with_total else None, rows_of, count, offset, params)

    @staticmethod
    async def _page_and_total(page, count_query, rows_of, count: int, offset: int, params: dict  # noqa: ANN001
                              ) -> tuple[list[StoredResource], int | None]:
        """Run the page (None: no rows asked for) and, when the page cannot tell the total, the count (None: no
        total asked for), each by `rows_of(statement, values)`."""
        rows = []
        if page is not None:
            rows = await rows_of(page, {**params, _FIRST: offset + count, _LIMIT: count, _OFFSET: offset})
        total = None
        if count_query is not None:
            if 0 < len(rows) < count or (offset == 0 and len(rows) < count):
                total = offset + len(rows)
            else:
                total = int((await rows_of(count_query, params))[0]["total"] or 0)
        return [stored(r) for r in rows], total

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
        """Ids of `resource_type` resources whose reference param `param` points at one of `targets` (`param` as
        the index rows name it: a parameter that shares another's rows by that one's, `definitions.index_name`).

        Targets this unit created under ids it drew itself (`Writes.new_id`) are named by no row stored before
        the unit (nothing could name an id not yet drawn), so the unit's own index rows answer for them: no
        flush, no statement (a Bundle's Task asks which requests name its new Patient)."""
        if not targets:
            return []
        if all(target in self._minted for target in targets):
            wanted = {(param, t, i) for t, i in targets}
            return sorted(rid for (rtype, rid), rows in self._indexed.items() if rtype == resource_type
                          and any((r["param"], r["system"], r["value"]) in wanted for r in rows))
        await self._flushed(index_of=resource_type)
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
            self._parties[key] = self._pending.stored_parties(key, {r.organization_id for r in rows})
        return set(self._parties[key])

    async def recorder(self, resource_type: str, resource_id: str) -> str | None:
        """The organisation that created the resource (None: the exchange itself did, or it is not a referral's)."""
        key = (resource_type, resource_id)
        if key not in self._recorders:
            self._recorders[key] = (await self.conn.execute(select(resource_recorder.c.organization_id).where(
                resource_recorder.c.resource_type == resource_type, resource_recorder.c.resource_id == resource_id))
            ).scalar()
        return self._recorders[key]


_VIEWER, _FIRST, _LIMIT, _OFFSET = "viewer", "page_first", "page_limit", "page_offset"  # (bind parameter names)
# (resource type, shape, access filter class or None, PostgreSQL) -> (page, count) statements. Shapes are few by
# construction (`Shaped`): the cache is not bounded.
_SHAPED: dict[tuple, tuple[direct.Statement, direct.Statement]] = {}


@dataclass(frozen=True)
class Shaped:
    """A search whose SQL depends only on `shape`: `build()` gives its (conditions, order, leading key as an index
    yields it, or None) as `Reads.search` takes them, in which every value that may differ between two searches of
    the same shape is a named bind parameter, its value in `params` (the rest are constants of the shape). The
    access filter's organisation is bound by the store itself."""
    shape: tuple
    params: Mapping[str, Any]
    build: Callable[[], tuple[list, list, Any]]
    # the same matches as rows of one table (index rows: they exist for current, undeleted versions only) with the
    # column holding their resource's id, for the count: (table, conditions, id column), the same bind parameters
    counted: Callable[[], tuple[Any, list, Any]] | None = None


def _where(resource_type: str, conditions: Sequence, clause) -> list:  # noqa: ANN001
    where = [resource.c.resource_type == resource_type, resource.c.deleted.is_(False), *conditions]
    return where if clause is None else [*where, clause]


def _page(where: list, order_by: Sequence, first_by, postgres: bool):  # noqa: ANN001, ANN202
    """The page's statement (its paging as the bind parameters _FIRST, _LIMIT and _OFFSET)."""
    if first_by is not None and postgres:
        first = select(resource, first_by.element.label("first_by")).where(*where).order_by(first_by) \
            .fetch(bindparam(_FIRST), with_ties=True).subquery()
        adapt = ClauseAdapter(first).traverse
        stmt = select(*(first.c[c.name] for c in resource.c)).order_by(*(adapt(o) for o in order_by))
    else:
        stmt = select(resource).where(*where).order_by(*order_by)
    return stmt.limit(bindparam(_LIMIT)).offset(bindparam(_OFFSET))


def _count(where: list):  # noqa: ANN202
    return select(func.count().label("total")).select_from(resource).where(*where)
