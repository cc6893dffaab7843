"""The entries of a transaction or batch Bundle, parsed and checked before anything runs: the request's method and
url, the resource (validated as R4), the conditions, and the rule that a Bundle changes each resource once. An
error names the entry it came from (`Bundle.entry[i]...`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exchange.errors import BadRequest, FhirError
from exchange.fhir.validate import ID_PATTERN, check_resource_type, validate_resource

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
    # the reference strings of `resource` (POST, PUT) with the objects that hold them, found as it was validated
    references: list[tuple[dict, str]] = field(default_factory=list, repr=False, compare=False)


def parse_entry(index: int, raw: Any, batch: bool) -> Entry:
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
    references: list[tuple[dict, str]] = []
    if method in ("POST", "PUT"):
        if resource is None:
            raise BadRequest(f"{where}.resource is required for {method}", expression=f"{where}.resource",
                             code="required")
        try:
            validate_resource(resource, resource_type, references)
        except FhirError as exc:
            raise at_entry(exc, where) from None
    if method in ("PUT", "DELETE") and not resource_id:
        raise BadRequest(f"{where}: {method} needs a url of the form Type/id (conditional {method} is not supported)",
                         expression=f"{where}.request.url", code="not-supported")
    return Entry(index, method, url, resource_type, resource_id, query or None, raw.get("fullUrl"), resource,
                 request.get("ifMatch"), request.get("ifNoneExist"), references)


def repeated(entries: list[Entry]) -> list[Entry]:
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


def repeated_error(entry: Entry) -> BadRequest:
    return BadRequest(f"Bundle.entry[{entry.index}]: another entry of the Bundle changes the same resource; a "
                      "Bundle changes each resource once", expression=f"Bundle.entry[{entry.index}].request.url")


def at_entry(error: FhirError, where: str) -> FhirError:
    """The same error, its expressions prefixed by the entry it came from. An entry's Allow (a 405's) names the
    methods of the entry's url, not the Bundle's: dropped, so a transaction's 405 says what the base accepts."""
    error.headers.pop("Allow", None)
    for issue in error.issues:
        issue.expression = [f"{where}.resource.{e.split('.', 1)[1]}" if "." in e else f"{where}.{e}"
                            for e in issue.expression] or [where]
        issue.diagnostics = f"{where}: {issue.diagnostics}"
    return error
