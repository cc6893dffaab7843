"""Helpers for the exchange log's tests: direct looks at the audit tables (to search the whole log for survivor
data, and to tamper with it) and the CLI run as a user runs it. Partners, auditors and admins are real clients
with real tokens (`make_client` in tests/conftest.py)."""
from __future__ import annotations

import asyncio
import base64

import orjson
from sqlalchemy import select, text
from typer.testing import CliRunner

from exchange.audit.tables import audit_chain, audit_event
from exchange.main import cli as cli_app

AUDIT_SCOPES = "system/AuditEvent.rs"


async def audit_rows(exchange) -> list[dict]:  # noqa: ANN001
    """Every record in entry order (the chain's order once linked; a request answers before its record is)."""
    async with exchange.db.engine.connect() as conn:
        rows = (await conn.execute(select(audit_event.c.content, audit_chain.c.seq).select_from(audit_event.outerjoin(
            audit_chain, audit_chain.c.entry == audit_event.c.entry)).order_by(audit_event.c.entry))).all()
    return [orjson.loads(r.content) | {"_seq": r.seq} for r in rows]


async def whole_log_text(exchange) -> str:  # noqa: ANN001
    """Every text the audit tables hold (base64 queries decoded), to search for survivor data."""
    parts: list[str] = []
    async with exchange.db.engine.connect() as conn:
        for table in ("audit_event", "audit_entity", "audit_chain", "audit_queue", "audit_head", "audit_checkpoint"):
            for row in (await conn.execute(text(f"SELECT * FROM {table}"))).all():
                parts.extend(str(v) for v in row)
    for row in await audit_rows(exchange):
        for entity in row.get("entity", []):
            if "query" in entity:
                parts.append(base64.b64decode(entity["query"]).decode())
    return "\n".join(parts)


def query_of(event: dict) -> str | None:
    for entity in event.get("entity", []):
        if "query" in entity:
            return base64.b64decode(entity["query"]).decode()
    return None


def subtypes(event: dict) -> list[str]:
    return [c["code"] for c in event.get("subtype", [])]


def references(event: dict) -> list[str]:
    return [e["what"]["reference"] for e in event.get("entity", []) if "reference" in e.get("what", {})]


async def cli(*args: str):  # noqa: ANN201
    """Run `exchange ...` as a user would (in a thread: the CLI runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, cli_app, list(args))


async def sql(exchange, statement: str, **params) -> None:  # noqa: ANN001
    async with exchange.db.engine.begin() as conn:
        await conn.execute(text(statement), params)
