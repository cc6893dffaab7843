"""Search-index rows of a resource, derived from the search-parameter table in `definitions`."""
from __future__ import annotations

import unicodedata
from typing import Any, Iterator

from exchange.fhir.dates import EARLIEST, LATEST, parse_fhir_date
from exchange.fhir.definitions import SEARCH_PARAMS, SearchParam
from exchange.fhir.references import references_in, split_reference
from exchange.store.values import IndexRow


def normalise_string(value: str) -> str:
    """Case- and accent-insensitive form used by string search (FHIR's default string matching)."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def _values_at(node: Any, parts: tuple[str, ...]) -> list[Any]:
    """The values at the dotted path `parts` under `node`, arrays flattened on the way (a list of them)."""
    nodes = [node]
    for part in parts:
        found: list[Any] = []
        for item in nodes:
            _children(item, part, found)
        nodes = found
    out: list[Any] = []
    for item in nodes:
        if isinstance(item, list):
            out.extend(item)
        elif item is not None:
            out.append(item)
    return out


def _children(node: Any, part: str, found: list[Any]) -> None:
    """The element `part` of `node`, of each object of an array `node` (at any depth), into `found`."""
    if isinstance(node, dict):
        value = node.get(part)
        if value is not None:
            found.append(value)
    elif isinstance(node, list):
        for item in node:
            _children(item, part, found)


def _cut(system: Any) -> str | None:
    """A system as the index column holds it (255 characters; a search value is never longer)."""
    return system[:255] if isinstance(system, str) else None


def _token_rows(name: str, value: Any) -> Iterator[IndexRow]:
    if isinstance(value, bool):
        yield IndexRow(name, value="true" if value else "false")
    elif isinstance(value, str):
        yield IndexRow(name, value=value[:255])
    elif isinstance(value, dict):
        if "coding" in value:  # CodeableConcept
            for coding in value.get("coding") or []:
                if isinstance(coding, dict) and coding.get("code"):
                    yield IndexRow(name, system=_cut(coding.get("system")), value=str(coding["code"])[:255])
        elif "code" in value:  # Coding
            yield IndexRow(name, system=_cut(value.get("system")), value=str(value["code"])[:255])
        elif isinstance(value.get("value"), str):  # Identifier
            yield IndexRow(name, system=_cut(value.get("system")), value=value["value"][:255])


def _reference_rows(name: str, value: Any) -> Iterator[IndexRow]:
    for reference in references_in(value):
        target = split_reference(reference)
        if target:
            yield IndexRow(name, system=target[0], value=target[1])


def _string_rows(name: str, value: Any) -> Iterator[IndexRow]:
    if isinstance(value, str):
        yield IndexRow(name, value=normalise_string(value)[:255], text=value)
    elif isinstance(value, dict):  # HumanName / Address: index the text-bearing parts
        for key in ("text", "family", "city", "state", "country", "line", "given"):
            sub = value.get(key)
            for item in sub if isinstance(sub, list) else [sub]:
                if isinstance(item, str):
                    yield IndexRow(name, value=normalise_string(item)[:255], text=item)


def _date_rows(name: str, value: Any) -> Iterator[IndexRow]:
    if isinstance(value, str):
        try:
            start, end = parse_fhir_date(value)
        except ValueError:
            return
        yield IndexRow(name, date_start=start, date_end=end)
    elif isinstance(value, dict) and ("start" in value or "end" in value):  # Period
        try:
            start = parse_fhir_date(value["start"])[0] if value.get("start") else EARLIEST
            end = parse_fhir_date(value["end"])[1] if value.get("end") else LATEST
        except (TypeError, ValueError):
            return
        yield IndexRow(name, date_start=start, date_end=end)


_EXTRACTORS = {"token": _token_rows, "reference": _reference_rows, "string": _string_rows, "date": _date_rows,
               "uri": _token_rows}


def _extension_values(param: SearchParam, value: Any) -> Iterator[Any]:
    """The value[x] of `value` when it is an extension with the parameter's url (`url#part`: the value[x] of the
    part `part` of that complex extension)."""
    url, _, part = (param.extension_url or "").partition("#")
    if isinstance(value, dict) and value.get("url") == url:
        nodes = [p for p in value.get("extension") or [] if isinstance(p, dict) and p.get("url") == part] \
            if part else [value]
        for node in nodes:
            for key, item in node.items():
                if key.startswith("value"):
                    yield item


def index_param(param: SearchParam, body: dict) -> list[IndexRow]:
    if param.flag_extension:
        present = any(isinstance(e, dict) and e.get("url") == param.flag_extension for e in body.get("extension") or [])
        return [IndexRow(param.name, value="true")] if present else []
    rows: list[IndexRow] = []
    extract = _EXTRACTORS[param.type] if param.paths else None
    for parts in _split(param):
        for value in _values_at(body, parts):
            values = _extension_values(param, value) if param.extension_url else (value,)
            for item in values:
                rows.extend(extract(param.name, item))
    return rows


_PARTS: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = {}  # a parameter's paths, split once


def _split(param: SearchParam) -> tuple[tuple[str, ...], ...]:
    parts = _PARTS.get(param.paths)
    if parts is None:
        parts = _PARTS[param.paths] = tuple(tuple(path.split(".")) for path in param.paths)
    return parts


# Keys that hold two parameters' values together (first's system, "first value|second value"), so that a search on
# both finds its rows by one key: an inbox search (a shelter's requested Tasks) then costs what that organisation's
# open Tasks cost, not its whole history (`exchange.fhir.search_sql` searches by the key). Not search
# parameters of their own; migration 0800 wrote them for what was stored before.
COMBINED_KEYS: dict[str, tuple[tuple[str, str, str], ...]] = {"Task": (("owner+status", "owner", "status"),)}


def combined_value(first: str, second: str) -> str:
    return f"{first}|{second}"


def _combined_rows(resource_type: str, rows: list[IndexRow]) -> list[IndexRow]:
    out = []
    for key, first, second in COMBINED_KEYS.get(resource_type, ()):
        seconds = [r.value for r in rows if r.param == second and r.value]
        out += [IndexRow(key, system=r.system, value=combined_value(r.value, value))
                for r in rows if r.param == first and r.value for value in seconds]
    return out


def index_rows(resource_type: str, body: dict) -> list[IndexRow]:
    """All index rows for `body` (duplicates removed), the combined keys included."""
    rows: list[IndexRow] = []
    for param in SEARCH_PARAMS.get(resource_type, {}).values():
        if not param.indexed_as:  # (one that shares another's rows writes none: `definitions.index_name`)
            rows.extend(index_param(param, body))
    rows = list(dict.fromkeys(rows))
    return rows + list(dict.fromkeys(_combined_rows(resource_type, rows)))
