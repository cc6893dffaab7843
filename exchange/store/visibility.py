"""Who may see a stored row: what the store asks of the caller's access filter, inside every query.

The store does not decide who sees what. A filter says whose view it is (`organization_id`; None: the exchange's
own, `UNRESTRICTED`, which sees every row), which types it leaves unfiltered, and, in SQL, which rows of a filtered
type it sees (`condition`). Need to know supplies an organisation's filter (`exchange.need_to_know.visibility`: a row
is visible while a `resource_party` row names the organisation); the store puts its condition into every read,
search and history query (`visible_clause`) and, for a row a unit already holds, checks the party rows it read with
it (`Reads.read`), so a filter never runs after the query.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AccessFilter:
    """Restricts queries to the rows `condition` admits for `organization_id`. None means unrestricted."""
    organization_id: str | None = None
    types_without_filter: frozenset[str] = field(default_factory=frozenset)

    def applies_to(self, resource_type: str) -> bool:
        return self.organization_id is not None and resource_type not in self.types_without_filter

    def condition(self, resource_type: str, id_column):  # noqa: ANN001, ANN201
        """SQL: the row of `resource_type` whose id is `id_column` is visible under this filter."""
        raise NotImplementedError("a filtered view says in SQL which rows it sees "
                                  "(exchange.need_to_know.visibility.PartyFilter)")


UNRESTRICTED = AccessFilter()


def visible_clause(table, resource_type: str, access: AccessFilter, id_column=None):  # noqa: ANN001
    """SQL condition: the row is visible under `access` (None: every row of the type is)."""
    if not access.applies_to(resource_type):
        return None
    return access.condition(resource_type, id_column if id_column is not None else table.c.id)
