"""A transaction's new resources pointing at each other: `urn:uuid:` fullUrls replaced by the server ids wherever
they are referenced, and POST entries run after the new resources they reference."""
from __future__ import annotations

from typing import Any

from exchange.fhir.bundle_entries import Entry
from exchange.fhir.references import all_references


def rewrite(node: Any, mapping: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value in mapping:
                out[key] = mapping[value]
            else:
                out[key] = rewrite(value, mapping)
        return out
    if isinstance(node, list):
        return [rewrite(item, mapping) for item in node]
    return node


def post_order(posts: list[Entry]) -> list[Entry]:
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
