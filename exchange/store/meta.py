"""FHIR `meta` as the store assigns it: the server's id, versionId and lastUpdated in every stored version."""
from __future__ import annotations

from datetime import datetime

from exchange.store.clock import fhir_instant


def with_meta(body: dict, resource_id: str, version_id: int, last_updated: datetime) -> dict:
    """The resource as stored: server-assigned id and meta.versionId/lastUpdated (other meta kept)."""
    meta = dict(body.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = fhir_instant(last_updated)
    out = {"resourceType": body["resourceType"], "id": resource_id, "meta": meta}
    for key, value in body.items():
        if key not in ("resourceType", "id", "meta"):
            out[key] = value
    return out


def tombstone(resource_type: str, resource_id: str, version_id: int, last_updated: datetime,
              tag: dict | None = None) -> dict:
    """The body of a deleted version: nothing but its identity and meta (with `tag`: a version purged by
    retention, `exchange.store.writes.Writes.purge`)."""
    meta: dict = {"versionId": str(version_id), "lastUpdated": fhir_instant(last_updated)}
    if tag is not None:
        meta["tag"] = [tag]
    return {"resourceType": resource_type, "id": resource_id, "meta": meta}
