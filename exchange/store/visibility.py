"""Who may see a stored row: the caller's access filter and its SQL condition, applied inside every query."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, exists

from exchange.store.tables import resource_party


@dataclass(frozen=True)
class AccessFilter:
    """Restricts queries to resources whose party rows name `organization_id`. None means unrestricted."""
    organization_id: str | None = None
    types_without_filter: frozenset[str] = field(default_factory=frozenset)

    def applies_to(self, resource_type: str) -> bool:
        return self.organization_id is not None and resource_type not in self.types_without_filter


UNRESTRICTED = AccessFilter()


def visible_clause(table, resource_type: str, access: AccessFilter, id_column=None):  # noqa: ANN001
    """SQL condition: the row is visible under `access` (an EXISTS on resource_party)."""
    if not access.applies_to(resource_type):
        return None
    id_column = id_column if id_column is not None else table.c.id
    return exists().where(and_(resource_party.c.resource_type == resource_type,
                               resource_party.c.resource_id == id_column,
                               resource_party.c.organization_id == access.organization_id))
