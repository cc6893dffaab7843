"""FHIR references: the (type, id) a reference string points at, and the references an element holds."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterator

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR id: what every id column holds
TYPE_PATTERN = re.compile(r"^[A-Z][A-Za-z]{0,63}$")


def reference_path(reference: str) -> list[str]:
    """The segments of a literal reference, its version left out: 'a/fhir/Task/1/_history/2' -> ['a', 'fhir',
    'Task', '1']. The one place a reference string is taken apart (the type and id are the last two segments)."""
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts


@lru_cache(maxsize=4096)  # the same few references are taken apart many times a request (parties, rules, index)
def split_reference(reference: str) -> tuple[str, str] | None:
    """'Organization/1', '.../fhir/Organization/1' or 'Organization/1/_history/2' -> ('Organization', '1').

    None for contained ('#x') and placeholder ('urn:uuid:...') references, for anything without a type, and for
    a type or id no resource can have (validation refuses those in resources).
    """
    if reference.startswith(("#", "urn:")):
        return None
    parts = reference_path(reference.rstrip("/"))
    if len(parts) < 2 or not TYPE_PATTERN.match(parts[-2]) or not ID_PATTERN.match(parts[-1]):
        return None
    return parts[-2], parts[-1]


def references_in(value: Any) -> Iterator[str]:
    """The reference strings of a Reference element or a list of them."""
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict) and isinstance(item.get("reference"), str):
            yield item["reference"]


def all_references(node: Any) -> set[str]:
    """Every reference string anywhere in a resource or element."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                found.add(value)
            else:
                found |= all_references(value)
    elif isinstance(node, list):
        for item in node:
            found |= all_references(item)
    return found
