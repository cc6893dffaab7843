"""The hash chain: canonical JSON and the link hash of each record.

A record's hash is SHA-256 over the previous record's hash, its sequence number and its canonical JSON
(keys sorted, no whitespace, UTF-8: the RFC 8785 form for the strings and integers an AuditEvent holds). Editing,
deleting or reordering a record changes every hash from there on, and the signed checkpoints pin the head.
"""
from __future__ import annotations

import hashlib

import orjson

GENESIS = "0" * 64  # the "previous hash" of record 1
CHAIN_EXTENSION = "https://gbv-exchange.org/fhir/StructureDefinition/audit-chain"


def canonical(resource: dict) -> bytes:
    return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)


def link(previous_hash: str, seq: int, canonical_content: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(f"{previous_hash}\n{seq}\n".encode())
    digest.update(canonical_content)
    return digest.hexdigest()


def with_chain(content: str | bytes, seq: int | None, hash_: str | None) -> dict:
    """The AuditEvent as served and exported: its stored content plus its place in the chain (an extension), which a
    record still queued for the linker does not have yet."""
    resource = orjson.loads(content)
    if seq is None:
        return resource
    resource["extension"] = [{"url": CHAIN_EXTENSION, "extension": [
        {"url": "sequence", "valueInteger": seq}, {"url": "hash", "valueString": hash_}]}]
    return resource


def split_chain(resource: dict) -> tuple[bytes, int, str]:
    """Inverse of `with_chain`: (canonical content, sequence, hash). ValueError if the extension is missing."""
    resource = dict(resource)
    extensions = resource.pop("extension", None) or []
    chain = next((e for e in extensions if isinstance(e, dict) and e.get("url") == CHAIN_EXTENSION), None)
    if chain is None:
        raise ValueError("the AuditEvent carries no audit-chain extension")
    values = {e.get("url"): e for e in chain.get("extension", [])}
    try:
        seq = int(values["sequence"]["valueInteger"])
        hash_ = str(values["hash"]["valueString"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("the audit-chain extension needs sequence and hash") from None
    others = [e for e in extensions if e is not chain]
    if others:
        resource["extension"] = others
    return canonical(resource), seq, hash_
