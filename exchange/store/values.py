"""The values the store hands out and takes in: a stored version of a resource, one search-index row, and the
refusal of a write whose version another wrote first."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import orjson

from exchange.store.clock import from_db


class Superseded(Exception):
    """A write found the row it replaces moved on: another transaction wrote a version after this unit read it
    (`Writes.update` and `delete` raise it when their caller names nothing else to raise)."""


@dataclass(frozen=True)
class IndexRow:
    """One search value of a resource, as `exchange.fhir.indexing` derives it and the store writes it."""
    param: str
    system: str | None = None
    value: str | None = None
    text: str | None = None
    date_start: datetime | None = None
    date_end: datetime | None = None


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


def stored(row) -> StoredResource:  # noqa: ANN001
    """A row of `resource` or `resource_version` (a Row, or a mapping of its columns: exchange.store.direct) as a
    StoredResource."""
    m = getattr(row, "_mapping", row)
    return StoredResource(m["resource_type"], m["id"], m["version_id"], from_db(m["last_updated"]), m["deleted"],
                          m["content"])
