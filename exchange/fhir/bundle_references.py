"""A transaction's new resources pointing at each other: `urn:uuid:` fullUrls replaced by the server ids wherever
they are referenced, and POST entries run after the new resources they reference.

Both use the references validation found in each entry's resource (`Entry.references`: every reference string,
contained resources included, with the object that holds it), so neither walks a resource again."""
from __future__ import annotations

from exchange.fhir.bundle_entries import Entry


def rewrite(entry: Entry, mapping: dict[str, str]) -> dict | None:
    """The entry's resource with every reference to a fullUrl of `mapping` replaced by its server reference, in
    place: the resource is the request's own parsed JSON, which nothing else holds."""
    for holder, reference in entry.references:
        if reference in mapping:
            holder["reference"] = mapping[reference]
    return entry.resource


def post_order(posts: list[Entry]) -> list[Entry]:
    """POST entries, each after the new resources it references (original order otherwise; cycles tolerated)."""
    by_url = {e.full_url: e for e in posts if e.full_url}
    done: list[Entry] = []
    visiting: set[int] = set()

    def visit(entry: Entry) -> None:
        if entry in done or entry.index in visiting:
            return
        visiting.add(entry.index)
        for ref in sorted({reference for _, reference in entry.references}):
            if ref in by_url:
                visit(by_url[ref])
        visiting.discard(entry.index)
        done.append(entry)

    for entry in posts:
        visit(entry)
    return done
