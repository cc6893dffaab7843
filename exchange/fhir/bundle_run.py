"""One entry of a transaction or batch run in the request's unit of work by the same interaction step the REST
route of its method runs (`create_in`, `update_in`, `delete_in`, `read_in`, `search_in`: one dispatcher), and its
interaction's result as a response entry (status, location, etag, and what Prefer asks for);
the resources one request may return are counted across its entries (`Budget`)."""
from __future__ import annotations

from urllib.parse import parse_qsl

from exchange.errors import BadRequest
from exchange.fhir import bundles
from exchange.fhir.bundle_entries import Entry
from exchange.fhir.interactions import create, read, search_type, update
from exchange.fhir.interactions.result import Result
from exchange.fhir.interactions.write import parse_etag
from exchange.store.clock import fhir_instant
from exchange.store.values import StoredResource
from exchange.kernel.unit import Unit

# the reason phrase of an entry's status (response entries carry them)
REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 410: "Gone", 412: "Precondition Failed",
           422: "Unprocessable Entity"}


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
    """The entry run by the interaction of its method, the same step the REST route runs in its unit, and its
    response entry (a PUT's id checked by the route's own check). What is the entry's own: the If-Match parsed in
    the unit, a conditional create matched before any entry ran (`existing`, answered and recorded by the route's
    own step), ids assigned before any entry ran (`preassigned`)."""
    budget.check(entry)
    if entry.method == "POST":
        result = await create.matched_in(unit, existing[entry.index]) if entry.index in existing else \
            await create.create_in(unit, entry.resource_type, resource, preassigned[entry.index])
    elif entry.method == "PUT":
        update.check_update_id(entry.resource_type, entry.resource_id, resource)
        result = await update.update_in(unit, entry.resource_type, entry.resource_id, resource,
                                        parse_etag(entry.if_match))
    elif entry.method == "DELETE":
        result = await update.delete_in(unit, entry.resource_type, entry.resource_id, parse_etag(entry.if_match))
    elif entry.resource_id:
        result = Result(200, stored=await read.read_in(unit, entry.resource_type, entry.resource_id))
    else:
        plan = search_type.plan_of(unit.exchange, entry.resource_type,
                                   parse_qsl(entry.query or "", keep_blank_values=True), strict=False)
        result = Result(200, body=await search_type.search_in(unit, plan, budget.left))
    response = _response(result, entry, base, prefer)
    return budget.spend(response) if entry.method == "GET" else response  # (what a read or search returns)



def _response(result: Result, entry: Entry, base: str, prefer: str | None) -> dict:
    """An interaction's result as a response entry: a write's with its location (POST) and what Prefer asks for,
    a read's with the resource, a search's with its searchset, a delete's with its status alone."""
    status = f"{result.status} {REASONS[result.status]}"
    if result.body is not None:
        return {"resource": result.body, "response": {"status": status}}
    if result.status == 204:
        return {"response": {"status": status}}
    if entry.method == "GET":
        return response_entry(result.stored, status, base, resource=True)
    return response_entry(result.stored, status, base, location=entry.method == "POST", prefer=prefer)
