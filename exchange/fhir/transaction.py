"""transaction (all or nothing, one database transaction) and batch (each entry on its own) Bundles.

In a transaction, `urn:uuid:` fullUrls of new resources are replaced by their server ids wherever they are
referenced, entries run in the order DELETE, POST, PUT, GET (new resources that others point at first), and any
failure rolls back every entry. The entries are parsed and checked in `bundle_entries.py`, their references
rewritten in `bundle_references.py`, and each is run in `bundle_run.py` by its interaction's step.
"""
from __future__ import annotations

from typing import Any

from exchange.context import RequestContext
from exchange.errors import BadRequest, FhirError, PreconditionFailed
from exchange.fhir import bundles
from exchange.fhir.bundle_entries import METHOD_ORDER, Entry, at_entry, parse_entry, repeated, repeated_error
from exchange.fhir.bundle_references import post_order, rewrite
from exchange.fhir.bundle_run import REASONS, Budget, run_entry
from exchange.fhir.interactions import create as create_interaction
from exchange.fhir.interactions.result import Result
from exchange.kernel.exchange import Exchange
from exchange.store.values import StoredResource
from exchange.kernel.unit import open_unit


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
                    raise at_entry(exc, f"Bundle.entry[{entry.index}]") from None
                if found is not None:
                    existing[entry.index] = found
                    if entry.full_url:
                        mapping[entry.full_url] = f"{entry.resource_type}/{found.id}"
                    continue
            preassigned[entry.index] = unit.repo.new_id(entry.resource_type)
            if entry.full_url:
                mapping[entry.full_url] = f"{entry.resource_type}/{preassigned[entry.index]}"
        ordered = sorted([e for e in entries if e.method != "POST"], key=lambda e: METHOD_ORDER[e.method])
        ordered = [e for e in ordered if e.method == "DELETE"] + post_order(posts) + \
                  [e for e in ordered if e.method != "DELETE"]
        for entry in ordered:
            resource = rewrite(entry, mapping)
            try:
                results[entry.index] = await run_entry(unit, entry, resource, base, preassigned, existing,
                                                        budget, prefer)
            except FhirError as exc:
                raise at_entry(exc, f"Bundle.entry[{entry.index}]") from None
    return Result(200, body={"resourceType": "Bundle", "type": "transaction-response",
                             "entry": [results[e.index] for e in entries]})


async def batch(exchange: Exchange, ctx: RequestContext, entries: list[Entry], prefer: str | None = None) -> Result:
    base = exchange.settings.fhir_base_url
    budget = Budget(exchange.settings.request_max_resources)
    out = []
    for entry in entries:
        try:
            async with open_unit(exchange, ctx, "batch", entry.resource_type, entry.resource_id) as unit:
                preassigned = {entry.index: unit.repo.new_id(entry.resource_type)}
                existing: dict[int, StoredResource] = {}
                if entry.method == "POST" and entry.if_none_exist:
                    plan = create_interaction.condition_plan(exchange, entry.resource_type, entry.if_none_exist)
                    found = await create_interaction.existing_match(unit, plan, "ifNoneExist")
                    if found is not None:
                        existing[entry.index] = found
                out.append(await run_entry(unit, entry, entry.resource, base, preassigned, existing, budget,
                                            prefer))
        except FhirError as exc:
            out.append({"response": {"status": f"{exc.status} {REASONS.get(exc.status, 'Error')}",
                                     "outcome": bundles.outcome_of(exc)}})
    return Result(200, body={"resourceType": "Bundle", "type": "batch-response", "entry": out})


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
                entries.append(parse_entry(i, raw, batch=True))
            except FhirError as exc:
                errors[i] = exc
        for entry in repeated(entries):
            errors[entry.index] = repeated_error(entry)
        entries = [e for e in entries if e.index not in errors]
        if errors:  # report unparseable entries in place, run the rest
            result = await batch(exchange, ctx, entries, prefer)
            done = iter(result.body["entry"])
            merged = [{"response": {"status": f"{errors[i].status} {REASONS.get(errors[i].status, 'Error')}",
                                    "outcome": bundles.outcome_of(errors[i])}} if i in errors else next(done)
                      for i in range(len(raw_entries))]
            result.body["entry"] = merged
            return result
        return await batch(exchange, ctx, entries, prefer)
    entries = [parse_entry(i, raw, batch=False) for i, raw in enumerate(raw_entries)]
    overlapping = repeated(entries)
    if overlapping:
        raise repeated_error(overlapping[-1])
    full_urls = [e.full_url for e in entries if e.full_url]
    if len(full_urls) != len(set(full_urls)):
        raise BadRequest("Two entries share a fullUrl", expression="Bundle.entry.fullUrl")
    return await transaction(exchange, ctx, entries, prefer)
