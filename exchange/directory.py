"""Directory entries created by the exchange itself (CLI and demo)."""
from __future__ import annotations

from exchange.context import system_context
from exchange.fhir.interactions import create
from exchange.services import Exchange


async def add_organization(exchange: Exchange, body: dict, resource_id: str | None = None) -> str:
    """Create (or find, by identifier) an Organization and return its id (`resource_id`: a stable id of its own)."""
    condition = None
    for ident in body.get("identifier") or []:
        condition = f"identifier={ident.get('system', '')}|{ident['value']}"
        break
    result = await create.create(exchange, system_context(), "Organization", body, condition, resource_id)
    return result.stored.id
