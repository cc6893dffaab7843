"""Checking the chain: the whole log in the database, or an exported segment against two signed checkpoints.

Both report the first record that does not match (by sequence number), so an auditor knows where to look.
The database check trusts nothing stored beside the log: it recomputes every link, and then checks each signed
checkpoint itself (its signature against the published keys, its tree size and head against the recomputed
chain), the stored ones and any an auditor kept from earlier. An insider who rewrites records with recomputed
hashes, or cuts the tail, and edits or deletes the unsigned head and checkpoint columns, is caught by a signed
checkpoint that covers the change. Records still queued for the linker are reported, not judged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import orjson
from sqlalchemy import exists, func, select

from exchange.audit.chain import GENESIS, canonical, link, split_chain
from exchange.audit.checkpoint import BadCheckpoint, all_checkpoints, verify_checkpoint
from exchange.audit.linker import unlinked_count
from exchange.audit.tables import audit_chain, audit_event, audit_head, audit_queue
from exchange.store.clock import fhir_instant

BATCH = 2000
# The linked records in chain order: each chain position with its record (none if the record was deleted)
_LINKED = select(audit_chain.c.seq, audit_chain.c.hash, *[c for c in audit_event.c if c.name != "entry"]).select_from(
    audit_chain.outerjoin(audit_event, audit_event.c.entry == audit_chain.c.entry))
# Records neither linked nor queued: what deleting a chain position (the tail's, say) leaves behind
_STRAY = select(func.count()).select_from(audit_event).where(
    ~exists().where(audit_chain.c.entry == audit_event.c.entry), ~exists().where(audit_queue.c.entry == audit_event.c.entry))


@dataclass
class Verdict:
    ok: bool
    checked: int
    bad_seq: int | None = None
    reason: str | None = None
    unlinked: int = 0
    checkpoints: int = 0

    def __str__(self) -> str:
        if self.ok:
            text = f"ok: {self.checked} records verified"
            if self.checkpoints:
                text += f" against {self.checkpoints} signed checkpoint{'s' if self.checkpoints > 1 else ''}"
            if self.unlinked:
                text += f"; {self.unlinked} record{'s' if self.unlinked > 1 else ''} queued, not yet linked"
            return text
        where = f"record {self.bad_seq}" if self.bad_seq is not None else "the log"
        return f"FAILED at {where}: {self.reason} ({self.checked} records before it verified)"


def _columns_disagree(row, body: dict) -> str | None:  # noqa: ANN001
    """The indexed columns must say what the hashed content says (else searches could be misled)."""
    agents = body.get("agent") or [{}]
    who = agents[0].get("who") or {}
    org = who.get("reference", "").removeprefix("Organization/") if who.get("reference") else None
    client = ((agents[1] if len(agents) > 1 else {}).get("who") or {}).get("identifier", {}).get("value")
    first = next((e["what"]["reference"].split("/")[:2] for e in body.get("entity", [])
                  if "reference" in (e.get("what") or {})), [None, None])
    expected = {"id": body.get("id"), "action": body.get("action"), "outcome": body.get("outcome"),
                "client_id": client, "entity_type": first[0], "entity_id": first[1],
                "subtype": (body.get("subtype") or [{}])[0].get("code"), "organization_id": org,
                "recorded": body.get("recorded")}
    actual = {"id": row.id, "action": row.action, "outcome": row.outcome, "subtype": row.subtype,
              "client_id": row.client_id, "entity_type": row.entity_type, "entity_id": row.entity_id,
              "organization_id": row.organization_id, "recorded": fhir_instant(row.recorded)}
    for key, value in expected.items():
        if actual[key] != value:
            return f"column {key} does not match the hashed content"
    return None


async def _signed_checkpoints(exchange, kept: Sequence[str], jwks: dict) -> list[dict] | Verdict:  # noqa: ANN001
    """The payloads of every stored and kept checkpoint whose signature verifies; a failing Verdict otherwise."""
    tokens = [("stored", c.jws) for c in await all_checkpoints(exchange)] + [("kept", k) for k in kept]
    payloads = []
    for origin, token in tokens:
        try:
            payloads.append(verify_checkpoint(token, jwks))
        except BadCheckpoint as exc:
            return Verdict(False, 0, None, f"a {origin} checkpoint does not verify with the published keys ({exc})")
    return payloads


async def verify_database(exchange, kept: Sequence[str] = (), jwks: dict | None = None,  # noqa: ANN001
                          progress: Callable[..., None] | None = None) -> Verdict:
    """Recompute every link from record 1 up to the head, then check every signed checkpoint against the chain.
    `progress(n, total=...)` hears of each batch checked (the CLI's progress bar).

    `kept`: checkpoints (compact JWS) an auditor saved earlier; `jwks`: the published keys (default: the exchange's).
    """
    payloads = await _signed_checkpoints(exchange, kept, jwks or await exchange.keys.public_jwks())
    if isinstance(payloads, Verdict):
        return payloads
    wanted = {p["tree_size"] for p in payloads}
    previous, expected_seq, checked = GENESIS, 1, 0
    hashes_at: dict[int, str] = {0: GENESIS}
    async with exchange.db.engine.connect() as conn:
        head = (await conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1))).first()
        last = int(head.seq) if head is not None else None  # records linked after this read are not judged
        if progress is not None:
            progress(0, total=last or None)
        after = 0
        while True:
            query = _LINKED.where(audit_chain.c.seq > after).order_by(audit_chain.c.seq).limit(BATCH)
            if last is not None:
                query = query.where(audit_chain.c.seq <= last)
            rows = (await conn.execute(query)).all()
            if not rows:
                break
            for row in rows:
                if row.seq != expected_seq:
                    return Verdict(False, checked, expected_seq,
                                   f"record {expected_seq} is missing (next stored record is {row.seq})")
                if row.content is None:  # a chain position whose record is gone
                    return Verdict(False, checked, row.seq, f"record {row.seq} is missing (its chain position "
                                                            "is stored, its record is not)")
                try:
                    body = orjson.loads(row.content)
                    content = canonical(body)
                except orjson.JSONDecodeError:
                    return Verdict(False, checked, row.seq, "content is not JSON")
                if content != row.content.encode():
                    return Verdict(False, checked, row.seq, "content is not in canonical form")
                digest = link(previous, row.seq, content)
                if digest != row.hash:
                    return Verdict(False, checked, row.seq, "hash does not match content and predecessor")
                problem = _columns_disagree(row, body)
                if problem:
                    return Verdict(False, checked, row.seq, problem)
                previous, expected_seq, checked = digest, expected_seq + 1, checked + 1
                if row.seq in wanted:
                    hashes_at[row.seq] = digest
            after = rows[-1].seq
            if progress is not None:
                progress(len(rows))
        unlinked = await unlinked_count(conn)
        stray = (await conn.execute(_STRAY)).scalar()
        newest = (await conn.execute(select(func.max(audit_chain.c.seq)))).scalar()
        now_head = (await conn.execute(select(audit_head.c.seq).where(audit_head.c.id == 1))).scalar()
    if stray:  # every record commits with its queue row, and a pass links it and unqueues it at once
        return Verdict(False, checked, None, f"{stray} record{'s are' if stray > 1 else ' is'} neither linked into "
                                             "the chain nor queued for it")
    if newest is not None and now_head is not None and newest > now_head:  # the linker moves both at once
        return Verdict(False, checked, int(now_head) + 1, f"record {int(now_head) + 1} lies beyond the chain head")
    if head is not None and (int(head.seq), head.hash) != (checked, previous):
        return Verdict(False, checked, checked + 1 if head.seq > checked else head.seq,
                       f"the chain head says {head.seq} records but the log holds {checked}")
    for payload in sorted(payloads, key=lambda p: p["tree_size"]):
        size = payload["tree_size"]
        if size > checked:
            return Verdict(False, checked, checked + 1, f"checkpoint of tree size {size} is beyond the end of the log")
        if hashes_at.get(size) != payload["head"]:
            return Verdict(False, checked, size, f"the log differs from checkpoint of tree size {size}")
    return Verdict(True, checked, unlinked=unlinked, checkpoints=len(payloads))


def verify_segment(lines: Iterable[str | bytes], checkpoint_a: str, checkpoint_b: str, jwks: dict) -> Verdict:
    """From an NDJSON export and two signed checkpoints: every record between them present, unaltered, in order.

    The export may hold more records than the two checkpoints span; those outside (A.tree_size, B.tree_size] are
    ignored. Signatures are checked against `jwks` (the exchange's published keys).
    """
    try:
        a, b = verify_checkpoint(checkpoint_a, jwks), verify_checkpoint(checkpoint_b, jwks)
    except BadCheckpoint as exc:
        return Verdict(False, 0, None, str(exc))
    if a["tree_size"] > b["tree_size"]:
        a, b = b, a
    records: dict[int, tuple[bytes, str]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            content, seq, hash_ = split_chain(orjson.loads(line))
        except (orjson.JSONDecodeError, ValueError, AttributeError) as exc:
            return Verdict(False, 0, None, f"line {number} is not an exported AuditEvent: {exc}")
        if a["tree_size"] < seq <= b["tree_size"]:
            if seq in records:
                return Verdict(False, 0, seq, "the record appears twice")
            records[seq] = (content, hash_)
    previous, checked = a["head"], 0
    for seq in range(a["tree_size"] + 1, b["tree_size"] + 1):
        if seq not in records:
            return Verdict(False, checked, seq, "record is missing from the export")
        content, stated = records[seq]
        previous = link(previous, seq, content)
        if previous != stated:
            return Verdict(False, checked, seq, "hash does not match content and predecessor")
        checked += 1
    if previous != b["head"]:
        return Verdict(False, checked, b["tree_size"], "the segment does not end at the second checkpoint's head")
    return Verdict(True, checked)
