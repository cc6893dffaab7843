"""The exchange's access policy, as the kernel asks for it (`exchange.kernel.access.AccessPolicy`).

`exchange.auth.install` registers one `Policy` as `Exchange.access_policy`, so the FHIR interactions and the write
path ask it without importing `auth/`. It holds no rule of its own: each answer comes from the one module that holds
that rule (the permission check: `access.check_permission`; what a caller is shown of a confidential directory
entry: `confidential.shown_all`; the store filter and the parties of a written resource: `exchange.need_to_know`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

from exchange.auth import access, confidential
from exchange.context import RequestContext
from exchange.need_to_know import assign, visibility
from exchange.need_to_know.kinds import REFERRAL_TYPES
from exchange.need_to_know.parties import parties_changed
from exchange.store.repository import Repository
from exchange.store.values import StoredResource
from exchange.store.visibility import AccessFilter

if TYPE_CHECKING:
    from exchange.kernel.unit import Unit


class Policy:
    def filter(self, ctx: RequestContext) -> AccessFilter:
        return visibility.access_filter(ctx)

    def check_permission(self, ctx: RequestContext, resource_type: str, operation: str) -> None:
        access.check_permission(ctx, resource_type, operation)

    def may(self, ctx: RequestContext, resource_type: str, operation: str) -> bool:
        return access.may(ctx, resource_type, operation)

    async def shown(self, unit: "Unit", found: Sequence[StoredResource]) -> list[StoredResource]:
        return await confidential.shown_all(unit, found)

    async def written(self, repo: Repository, who: RequestContext, resource_type: str, resource_id: str,
                      body: Mapping, previous: Mapping | None) -> None:
        """The recorder of a new referral resource (the organisation that created it: the write-authority table
        reads it), then its parties: on an update only when an element that decides them changed."""
        if previous is None:
            if who.organization_id and resource_type in REFERRAL_TYPES:
                await repo.set_recorder(resource_type, resource_id, who.organization_id)
            await assign.assign_parties(repo, who, resource_type, resource_id, body)
        elif parties_changed(resource_type, previous, body):
            await assign.assign_parties(repo, who, resource_type, resource_id, body, previous=previous)
