"""Bundles and OperationOutcomes as the server returns them, built around stored JSON without re-serialising it."""
from __future__ import annotations

from typing import Iterable

import orjson

from exchange.errors import FhirError, Issue
from exchange.store.clock import fhir_instant
from exchange.store.values import StoredResource


def fragment(stored: StoredResource) -> orjson.Fragment:
    """The stored JSON, embedded as is (it was validated on the way in)."""
    return orjson.Fragment(stored.content)


def full_url(base: str, stored: StoredResource) -> str:
    return f"{base}/{stored.resource_type}/{stored.id}"


def searchset(base: str, matches: Iterable[StoredResource], included: Iterable[StoredResource], total: int | None,
              links: list[dict]) -> dict:
    bundle: dict = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    entries = [{"fullUrl": full_url(base, s), "resource": fragment(s), "search": {"mode": "match"}} for s in matches]
    entries += [{"fullUrl": full_url(base, s), "resource": fragment(s), "search": {"mode": "include"}}
                for s in included]
    if entries:
        bundle["entry"] = entries
    return bundle


def history(base: str, versions: Iterable[StoredResource], methods: dict[int, str], total: int, links: list[dict]
            ) -> dict:
    entries = []
    for s in versions:
        method = methods.get(s.version_id, "PUT")
        entry: dict = {"fullUrl": full_url(base, s)}
        if not s.deleted:
            entry["resource"] = fragment(s)
        entry["request"] = {"method": method,
                            "url": s.resource_type if method == "POST" else f"{s.resource_type}/{s.id}"}
        entry["response"] = {"status": "201 Created" if method == "POST" else
                             ("204 No Content" if s.deleted else "200 OK"),
                             "etag": s.etag, "lastModified": fhir_instant(s.last_updated)}
        entries.append(entry)
    bundle: dict = {"resourceType": "Bundle", "type": "history", "total": total, "link": links}
    if entries:
        bundle["entry"] = entries
    return bundle


def operation_outcome(issues: list[Issue]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


def outcome_of(error: FhirError) -> dict:
    return operation_outcome(error.issues)


def information(text: str, code: str = "informational") -> dict:
    return operation_outcome([Issue("information", code, text)])
