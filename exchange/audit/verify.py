"""Checking the chain: the whole log in the database, or an exported segment against two signed checkpoints.

Both report the first record that does not match (by sequence number), so an auditor knows where to look.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import orjson
from sqlalchemy import select

from exchange.audit.chain import GENESIS, canonical, link, split_chain
from exchange.audit.checkpoint import BadCheckpoint, all_checkpoints, verify_checkpoint
from exchange.audit.tables import audit_event, audit_head
from exchange.store.repository import fhir_instant

BATCH = 2000


@dataclass
class Verdict:
    ok: bool
    checked: int
    bad_seq: int | None = None
    reason: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.checked} records verified"
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


async def verify_database(exchange) -> Verdict:  # noqa: ANN001
    """Recompute every link from record 1, then check the head row and every stored checkpoint against it."""
    previous, expected_seq, checked = GENESIS, 1, 0
    hashes_at: dict[int, str] = {0: GENESIS}
    wanted = {c.tree_size for c in await all_checkpoints(exchange)}
    async with exchange.db.engine.connect() as conn:
        after = 0
        while True:
            rows = (await conn.execute(select(audit_event).where(audit_event.c.seq > after)
                                       .order_by(audit_event.c.seq).limit(BATCH))).all()
            if not rows:
                break
            for row in rows:
                if row.seq != expected_seq:
                    return Verdict(False, checked, expected_seq,
                                   f"record {expected_seq} is missing (next stored record is {row.seq})")
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
        head = (await conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1))).first()
    if head is not None and (int(head.seq), head.hash) != (checked, previous):
        return Verdict(False, checked, checked + 1 if head.seq > checked else head.seq,
                       f"the chain head says {head.seq} records but the log holds {checked}")
    for checkpoint in await all_checkpoints(exchange):
        if checkpoint.tree_size > checked:
            return Verdict(False, checked, checked + 1,
                           f"checkpoint of tree size {checkpoint.tree_size} is beyond the end of the log")
        if hashes_at.get(checkpoint.tree_size) != checkpoint.head:
            return Verdict(False, checked, checkpoint.tree_size,
                           f"the log differs from checkpoint of tree size {checkpoint.tree_size}")
    return Verdict(True, checked)


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
