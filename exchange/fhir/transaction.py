"""transaction (all or nothing, one database transaction) and batch (each entry on its own) Bundles.

In a transaction, `urn:uuid:` fullUrls of new resources are replaced by their server ids wherever they are
referenced, entries run in the order DELETE, POST, PUT, GET (new resources that others point at first), and any
failure rolls back every entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from exchange.context import RequestContext
from exchange.errors import BadRequest, FhirError, PreconditionFailed
from exchange.fhir import bundles
from exchange.fhir.interactions import create as create_interaction
from exchange.fhir.interactions import read as read_interaction
from exchange.fhir.interactions import search_type
from exchange.fhir.interactions.result import Result
from exchange.fhir.interactions.write import current_for_write, insert_new, new_id, parse_etag, remove, replace
from exchange.fhir.references import all_references
from exchange.fhir.search import parse_search
from exchange.fhir.validate import ID_PATTERN, check_resource_type, validate_resource
from exchange.services import Exchange
from exchange.store.repository import StoredResource, fhir_instant
from exchange.unit import Unit, open_unit

METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}


@dataclass
class Entry:
    index: int
    method: str
    url: str
    resource_type: str
    resource_id: str | None
    query: str | None
    full_url: str | None
    resource: dict | None
    if_match: str | None
    if_none_exist: str | None


def _parse_entry(index: int, raw: Any, batch: bool) -> Entry:
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise BadRequest(f"{where}.request is required", expression=f"{where}.request", code="required")
    request = raw["request"]
    method, url = request.get("method"), request.get("url")
    if method not in METHOD_ORDER:
        raise BadRequest(f"{where}.request.method must be one of GET, POST, PUT, DELETE",
                         expression=f"{where}.request.method", code="not-supported")
    if not isinstance(url, str) or not url:
        raise BadRequest(f"{where}.request.url is required", expression=f"{where}.request.url", code="required")
    path, _, query = url.lstrip("/").partition("?")
    parts = path.split("/")
    resource_type = parts[0]
    check_resource_type(resource_type)
    resource_id = parts[1] if len(parts) > 1 else None
    if resource_id is not None and not ID_PATTERN.match(resource_id):
        raise BadRequest(f"{where}.request.url: the id must match [A-Za-z0-9-.]{{1,64}}",
                         expression=f"{where}.request.url")
    resource = raw.get("resource")
    if method in ("POST", "PUT"):
        if resource is None:
            raise BadRequest(f"{where}.resource is required for {method}", expression=f"{where}.resource",
                             code="required")
        try:
            validate_resource(resource, resource_type)
        except FhirError as exc:
            raise _at(exc, where) from None
    if method in ("PUT", "DELETE") and not resource_id:
        raise BadRequest(f"{where}: {method} needs a url of the form Type/id (conditional {method} is not supported)",
                         expression=f"{where}.request.url", code="not-supported")
    return Entry(index, method, url, resource_type, resource_id, query or None, raw.get("fullUrl"), resource,
                 request.get("ifMatch"), request.get("ifNoneExist"))


def _repeated(entries: list[Entry]) -> list[Entry]:
    """Entries that change (PUT, DELETE) a resource another entry also changes. FHIR (http.html) fails a
    transaction whose entries overlap; in a batch each must stand alone. Two changes of one resource in one
    request would, e.g., let a provider claim an open referral and cancel it before anyone saw it claimed."""
    seen: dict[tuple[str, str], Entry] = {}
    out: list[Entry] = []
    for entry in entries:
        if entry.method not in ("PUT", "DELETE"):
            continue
        key = (entry.resource_type, entry.resource_id)
        if key in seen:
            out += [seen[key]] if seen[key] not in out else []
            out.append(entry)
        else:
            seen[key] = entry
    return sorted(out, key=lambda e: e.index)


def _repeated_error(entry: Entry) -> BadRequest:
    return BadRequest(f"Bundle.entry[{entry.index}]: another entry of the Bundle changes the same resource; a "
                      "Bundle changes each resource once", expression=f"Bundle.entry[{entry.index}].request.url")


def _at(error: FhirError, where: str) -> FhirError:
    """The same error, its expressions prefixed by the entry it came from."""
    for issue in error.issues:
        issue.expression = [f"{where}.resource.{e.split('.', 1)[1]}" if "." in e else f"{where}.{e}"
                            for e in issue.expression] or [where]
        issue.diagnostics = f"{where}: {issue.diagnostics}"
    return error


def _rewrite(node: Any, mapping: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value in mapping:
                out[key] = mapping[value]
            else:
                out[key] = _rewrite(value, mapping)
        return out
    if isinstance(node, list):
        return [_rewrite(item, mapping) for item in node]
    return node




def _post_order(posts: list[Entry]) -> list[Entry]:
    """POST entries, each after the new resources it references (original order otherwise; cycles tolerated)."""
    by_url = {e.full_url: e for e in posts if e.full_url}
    done: list[Entry] = []
    visiting: set[int] = set()

    def visit(entry: Entry) -> None:
        if entry in done or entry.index in visiting:
            return
        visiting.add(entry.index)
        for ref in sorted(all_references(entry.resource)):
            if ref in by_url:
                visit(by_url[ref])
        visiting.discard(entry.index)
        done.append(entry)

    for entry in posts:
        visit(entry)
    return done


def _response(stored: StoredResource | None, status: str, base: str, location: bool = False,
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


async def _run_entry(unit: Unit, entry: Entry, resource: dict | None, base: str, preassigned: dict[int, str],
                     existing: dict[int, StoredResource], budget: Budget, prefer: str | None = None) -> dict:
    budget.check(entry)
    if entry.method == "POST":
        if entry.index in existing:
            return _response(existing[entry.index], "200 OK", base, location=True, prefer=prefer)
        stored = await insert_new(unit, entry.resource_type, resource, preassigned[entry.index])
        return _response(stored, "201 Created", base, location=True, prefer=prefer)
    if entry.method == "PUT":
        if resource.get("id") != entry.resource_id:
            raise BadRequest("The resource id differs from the url id",
                             expression=f"{entry.resource_type}.id")
        expected = parse_etag(entry.if_match)
        current = await current_for_write(unit, entry.resource_type, entry.resource_id, expected)
        stored = await replace(unit, current, resource, expected)
        return _response(stored, "200 OK", base, prefer=prefer)
    if entry.method == "DELETE":
        current = await current_for_write(unit, entry.resource_type, entry.resource_id, parse_etag(entry.if_match))
        await remove(unit, current)
        return {"response": {"status": "204 No Content"}}
    if entry.resource_id:
        stored = await read_interaction.read_in(unit, entry.resource_type, entry.resource_id)
        return budget.spend(_response(stored, "200 OK", base, resource=True))
    settings = unit.exchange.settings
    plan = parse_search(entry.resource_type, parse_qsl(entry.query or "", keep_blank_values=True), strict=False,
                        default_count=settings.default_page_size, max_count=settings.max_page_size,
                        limits=settings.search_limits)
    bundle = await search_type.search_in(unit, plan, budget.left)
    return budget.spend({"resource": bundle, "response": {"status": "200 OK"}})


async def transaction(exchange: Exchange, ctx: RequestContext, entries: list[Entry], prefer: str | None = None
                      ) -> Result:
    base = exchange.settings.fhir_base_url
    budget = Budget(exchange.settings.request_max_resources)
    results: dict[int, dict] = {}
    async with open_unit(exchange, ctx, "transaction") as unit:
        posts = [e for e in entries if e.method == "POST"]
        mapping: dict[str, str] = {}
        preassigned: dict[int, str] = {}
        existing: dict[int, StoredResource] = {}
        for entry in posts:
            if entry.if_none_exist:
                plan = create_interaction.condition_plan(exchange, entry.resource_type, entry.if_none_exist)
                try:
                    found = await create_interaction.existing_match(unit, plan, "ifNoneExist")
                except PreconditionFailed as exc:
                    raise _at(exc, f"Bundle.entry[{entry.index}]") from None
                if found is not None:
                    existing[entry.index] = found
                    if entry.full_url:
                        mapping[entry.full_url] = f"{entry.resource_type}/{found.id}"
                    continue
            preassigned[entry.index] = new_id()
            if entry.full_url:
                mapping[entry.full_url] = f"{entry.resource_type}/{preassigned[entry.index]}"
        ordered = sorted([e for e in entries if e.method != "POST"], key=lambda e: METHOD_ORDER[e.method])
        ordered = [e for e in ordered if e.method == "DELETE"] + _post_order(posts) + \
                  [e for e in ordered if e.method != "DELETE"]
        for entry in ordered:
            resource = _rewrite(entry.resource, mapping) if entry.resource is not None else None
            try:
                results[entry.index] = await _run_entry(unit, entry, resource, base, preassigned, existing,
                                                        budget, prefer)
            except FhirError as exc:
                raise _at(exc, f"Bundle.entry[{entry.index}]") from None
    return Result(200, body={"resourceType": "Bundle", "type": "transaction-response",
                             "entry": [results[e.index] for e in entries]})


async def batch(exchange: Exchange, ctx: RequestContext, entries: list[Entry], prefer: str | None = None) -> Result:
    base = exchange.settings.fhir_base_url
    budget = Budget(exchange.settings.request_max_resources)
    out = []
    for entry in entries:
        try:
            async with open_unit(exchange, ctx, "batch", entry.resource_type, entry.resource_id) as unit:
                preassigned = {entry.index: new_id()}
                existing: dict[int, StoredResource] = {}
                if entry.method == "POST" and entry.if_none_exist:
                    plan = create_interaction.condition_plan(exchange, entry.resource_type, entry.if_none_exist)
                    found = await create_interaction.existing_match(unit, plan, "ifNoneExist")
                    if found is not None:
                        existing[entry.index] = found
                out.append(await _run_entry(unit, entry, entry.resource, base, preassigned, existing, budget,
                                            prefer))
        except FhirError as exc:
            out.append({"response": {"status": f"{exc.status} {_REASONS.get(exc.status, 'Error')}",
                                     "outcome": bundles.outcome_of(exc)}})
    return Result(200, body={"resourceType": "Bundle", "type": "batch-response", "entry": out})


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
            410: "Gone", 412: "Precondition Failed", 422: "Unprocessable Entity"}


async def process_bundle(exchange: Exchange, ctx: RequestContext, body: Any, prefer: str | None = None) -> Result:
    """`prefer`: the request's Prefer return= value, applied to each write entry's response."""
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base URL takes a Bundle of type transaction or batch", expression="Bundle")
    kind = body.get("type")
    if kind not in ("transaction", "batch"):
        raise BadRequest("Bundle.type must be transaction or batch", expression="Bundle.type")
    raw_entries = body.get("entry") or []
    if not isinstance(raw_entries, list):
        raise BadRequest("Bundle.entry must be an array", expression="Bundle.entry")
    if len(raw_entries) > exchange.settings.bundle_max_entries:
        raise BadRequest(f"A Bundle may hold at most {exchange.settings.bundle_max_entries} entries",
                         expression="Bundle.entry", code="too-costly")
    if kind == "batch":
        entries, errors = [], {}
        for i, raw in enumerate(raw_entries):
            try:
                entries.append(_parse_entry(i, raw, batch=True))
            except FhirError as exc:
                errors[i] = exc
        for entry in _repeated(entries):
            errors[entry.index] = _repeated_error(entry)
        entries = [e for e in entries if e.index not in errors]
        if errors:  # report unparseable entries in place, run the rest
            result = await batch(exchange, ctx, entries, prefer)
            done = iter(result.body["entry"])
            merged = [{"response": {"status": f"{errors[i].status} {_REASONS.get(errors[i].status, 'Error')}",
                                    "outcome": bundles.outcome_of(errors[i])}} if i in errors else next(done)
                      for i in range(len(raw_entries))]
            result.body["entry"] = merged
            return result
        return await batch(exchange, ctx, entries, prefer)
    entries = [_parse_entry(i, raw, batch=False) for i, raw in enumerate(raw_entries)]
    repeated = _repeated(entries)
    if repeated:
        raise _repeated_error(repeated[-1])
    full_urls = [e.full_url for e in entries if e.full_url]
    if len(full_urls) != len(set(full_urls)):
        raise BadRequest("Two entries share a fullUrl", expression="Bundle.entry.fullUrl")
    return await transaction(exchange, ctx, entries, prefer)

