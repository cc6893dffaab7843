"""The repository: the only code that reads and writes resource rows, one per unit of work.

Its parts, one job a module: the clock (`clock.py`), the values it hands out (`values.py`), FHIR `meta`
(`meta.py`), who may see a row (`visibility.py`), the reads (`reads.py`) and the writes with the rows a unit defers
(`writes.py`). It stores each version whole, keeps the search-index and access-party rows of the current version, and
applies the caller's access filter inside every query (never after), so a resource an organisation may not see is
simply absent.
"""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from exchange.store.reads import Reads
from exchange.store.values import StoredResource
from exchange.store.writes import Pending, Writes


class Repository(Reads, Writes):
    """One per unit of work. It remembers the current version of what it read or wrote, party sets and reference
    lookups, so the rules of one request never read the same row twice. A filtered read of a row in memory asks only
    for its party set (once: party changes of the unit keep that set in step); of another row, it asks the database
    with the filter, and fills the memory for unfiltered reads of the same row. Reference lookups
    (`referring_ids`) are forgotten when the unit rewrites the index of that resource type.

    With `deferred` (a unit's repository), the version, index, party and recorder rows of its writes (and the party
    rows it removes) wait in memory and go to the database together, one statement a table for all the writes of
    the unit (`flush`; on PostgreSQL one statement): before any read of those tables through this repository (this
    repository's memory already holds its own), and once the unit's hooks have run, with the rows they added
    (`add_rows`; `exchange.kernel.unit.open_unit`). A created resource's row waits with them (its key decides a
    duplicate id when they are written: the unit fails, and nothing of it stays), and so does an update's row move
    (its version check decides a lost race when it is written: the flush writes nothing else and raises the
    update's `lost`); a resource written twice before a flush is written once, at its last version."""

    def __init__(self, conn: AsyncConnection, deferred: bool = False):
        self.conn = conn
        self.deferred = deferred
        self._pending = Pending()  # the rows of this unit's writes not written yet
        self._current: dict[tuple[str, str], StoredResource | None] = {}
        self._parties: dict[tuple[str, str], set[str]] = {}
        self._referring: dict[tuple[str, str, str, str], set[str]] = {}  # (type, param, target type, id) -> ids
        self._recorders: dict[tuple[str, str], str | None] = {}
        self._minted: set[tuple[str, str]] = set()  # ids this unit drew for the resources it creates (`new_id`)
        self._indexed: dict[tuple[str, str], list[dict]] = {}  # the index rows this unit wrote, by resource

    @property
    def pending(self) -> bool:
        """Whether rows of this unit wait to be written (`flush`)."""
        return bool(self._pending)
