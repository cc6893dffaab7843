"""The access policy: what the kernel and the generic FHIR layer ask before they read, write or show a resource.

The interactions (`exchange.fhir.interactions`) and the write path decide nothing about who may see or do what; they
ask the policy the exchange was built with (`Exchange.access_policy`), which `exchange.auth.install` registers. So the
layers below `auth/` never import it, and every rule stays in the one module that holds it: the permission check in
`exchange.auth.access`, confidential directory entries in `exchange.auth.confidential`, need to know (the store
filter, who becomes a party after a write) in its own package.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Protocol, Sequence

from exchange.context import RequestContext
from exchange.store.repository import Repository
from exchange.store.values import StoredResource
from exchange.store.visibility import AccessFilter

if TYPE_CHECKING:
    from exchange.kernel.unit import Unit


class AccessPolicy(Protocol):
    def filter(self, ctx: RequestContext) -> AccessFilter:
        """What `ctx` may see: the store filter every read and search of its unit applies inside the query."""

    def check_permission(self, ctx: RequestContext, resource_type: str, operation: str) -> None:
        """Raise Forbidden unless `ctx` may perform `operation` (c r u d s) on `resource_type` at all."""

    def may(self, ctx: RequestContext, resource_type: str, operation: str) -> bool:
        """Whether `check_permission` would pass (an _include the caller may not read is dropped, not refused)."""

    async def shown(self, unit: "Unit", found: Sequence[StoredResource]) -> list[StoredResource]:
        """`found` as the unit's caller may see it (in order, one for one), e.g. a confidential entry redacted."""

    async def written(self, repo: Repository, who: RequestContext, resource_type: str, resource_id: str,
                      body: Mapping, previous: Mapping | None) -> None:
        """After a version is stored by `who` (`previous`: the body it replaced, None on a create): record who
        created it and who may see it, and what it points at, from now on."""


class NoAccessPolicy:
    """The policy of an exchange built without `exchange.auth`: every question is an error, never an answer."""

    def _missing(self, *_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("no access policy: exchange.auth is not installed on this exchange "
                           "(see exchange.main.build)")

    filter = check_permission = may = _missing

    async def shown(self, unit: "Unit", found: Sequence[StoredResource]) -> list[StoredResource]:
        self._missing()

    async def written(self, repo: Repository, who: RequestContext, resource_type: str, resource_id: str,
                      body: Mapping, previous: Mapping | None) -> None:
        self._missing()
