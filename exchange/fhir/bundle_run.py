"""One entry of a transaction or batch run in the request's unit of work, through the same write, read and search
functions the REST interactions use, and its response entry (status, location, etag, and what Prefer asks for);
the resources one request may return are counted across its entries (`Budget`)."""
from __future__ import annotations

from urllib.parse import parse_qsl

from exchange.errors import BadRequest
from exchange.fhir import bundles
from exchange.fhir.bundle_entries import Entry
from exchange.fhir.interactions import read as read_interaction
from exchange.fhir.interactions import search_type
from exchange.fhir.interactions.write import current_for_write, insert_new, parse_etag, remove, replace
from exchange.fhir.search import parse_search
from exchange.store.clock import fhir_instant
from exchange.store.values import StoredResource
from exchange.kernel.unit import Unit

# the reason phrase of a failed entry's status (batch-response entries carry them)
REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
            410: "Gone", 412: "Precondition Failed", 422: "Unprocessable Entity"}


def response_entry(stored: StoredResource | None, status: str, base: str, location: bool = False,
              resource: bool = False, prefer: str | None = None) -> dict:
    """One response entry; `prefer` (Prefer: return=...) adds the resource or an OperationOutcome to writes."""
    response: dict = {"status": status}
    if stored is not None:
        if location:
            response["location"] = f"{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
        response["etag"] = stored.etag
        response["lastModified"] = fhir_instant(stored.last_updated)
    entry: dict = {}
    if stored is not None and not stored.deleted:
        entry["fullUrl"] = bundles.full_url(base, stored)
        if resource or prefer == "representation":
            entry["resource"] = bundles.fragment(stored)
    if stored is not None and prefer == "OperationOutcome":
        response["outcome"] = bundles.information(f"{stored.resource_type}/{stored.id} version "
                                                  f"{stored.version_id} stored")
    entry["response"] = response
    return entry


class Budget:
    """How many more resources this request may return (`Settings.request_max_resources` across all entries)."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def spend(self, entry: dict) -> dict:
        bundle = entry.get("resource")
        self.left -= len(bundle.get("entry", [])) if isinstance(bundle, dict) and bundle.get("type") == "searchset" \
            else (1 if bundle is not None else 0)
        return entry

    def check(self, entry: Entry) -> None:
        if entry.method == "GET" and self.left <= 0:
            raise BadRequest("This request has returned the most resources one request may: send the remaining "
                             "entries in another request", expression="Bundle.entry", code="too-costly")


async def run_entry(unit: Unit, entry: Entry, resource: dict | None, base: str, preassigned: dict[int, str],
                     existing: dict[int, StoredResource], budget: Budget, prefer: str | None = None) -> dict:
    budget.check(entry)
    if entry.method == "POST":
        if entry.index in existing:
            return response_entry(existing[entry.index], "200 OK", base, location=True, prefer=prefer)
        stored = await insert_new(unit, entry.resource_type, resource, preassigned[entry.index])
        return response_entry(stored, "201 Created", base, location=True, prefer=prefer)
    if entry.method == "PUT":
        if resource.get("id") != entry.resource_id:
            raise BadRequest("The resource id differs from the url id",
                             expression=f"{entry.resource_type}.id")
        expected = parse_etag(entry.if_match)
        current = await current_for_write(unit, entry.resource_type, entry.resource_id, expected)
        stored = await replace(unit, current, resource, expected)
        return response_entry(stored, "200 OK", base, prefer=prefer)
    if entry.method == "DELETE":
        current = await current_for_write(unit, entry.resource_type, entry.resource_id, parse_etag(entry.if_match))
        await remove(unit, current)
        return {"response": {"status": "204 No Content"}}
    if entry.resource_id:
        stored = await read_interaction.read_in(unit, entry.resource_type, entry.resource_id)
        return budget.spend(response_entry(stored, "200 OK", base, resource=True))
    settings = unit.exchange.settings
    plan = parse_search(entry.resource_type, parse_qsl(entry.query or "", keep_blank_values=True), strict=False,
                        default_count=settings.default_page_size, max_count=settings.max_page_size,
                        limits=settings.search_limits)
    bundle = await search_type.search_in(unit, plan, budget.left)
    return budget.spend({"resource": bundle, "response": {"status": "200 OK"}})
