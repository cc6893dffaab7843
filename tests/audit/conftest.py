"""Fixtures for the exchange log: clients acting for partner organisations, auditors and admins, and direct looks
at the audit tables (to search the whole log for survivor data, and to tamper with it)."""
from __future__ import annotations

import asyncio
import base64

import httpx
import orjson
import pytest
from fastapi import Request
from sqlalchemy import select, text
from typer.testing import CliRunner

from exchange.audit.tables import audit_entity, audit_event
from exchange.auth.bearer import request_context
from exchange.cli import app as cli_app
from exchange.context import RequestContext, system_context

from tests.conftest import BASE

ALL = frozenset({"system/*.cruds"})


@pytest.fixture
async def act_as(app):
    """act_as(org_id, role=..., scopes=...) -> an HTTP client whose requests carry that RequestContext.

    Stands in for bearer tokens: the context is what the token dependency would produce.
    """
    contexts: dict[str, RequestContext] = {"system": system_context(remote_addr="127.0.0.1")}

    def _context(request: Request) -> RequestContext:
        return contexts[request.headers.get("x-test-as", "system")]

    app.dependency_overrides[request_context] = _context
    opened: list[httpx.AsyncClient] = []

    def make(organization_id: str | None, role: str = "partner", scopes: frozenset[str] = ALL,
             client_id: str | None = None) -> httpx.AsyncClient:
        key = f"{role}:{organization_id}:{client_id}:{','.join(sorted(scopes))}"
        contexts[key] = RequestContext(client_id=client_id or f"client-{role}-{organization_id}",
                                       organization_id=organization_id, role=role, scopes=frozenset(scopes),
                                       remote_addr="10.1.2.3", request_id=None, token_id=f"tok-{key[:8]}")
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 40000)), base_url=BASE,
                                 headers={"Content-Type": "application/fhir+json", "x-test-as": key})
        opened.append(http)
        return http

    yield make
    for http in opened:
        await http.aclose()


async def audit_rows(exchange) -> list[dict]:
    async with exchange.db.engine.connect() as conn:
        rows = (await conn.execute(select(audit_event).order_by(audit_event.c.seq))).all()
    return [orjson.loads(r.content) | {"_seq": r.seq} for r in rows]


async def whole_log_text(exchange) -> str:
    """Every text the audit tables hold (base64 queries decoded), to search for survivor data."""
    parts: list[str] = []
    async with exchange.db.engine.connect() as conn:
        for table in ("audit_event", "audit_entity", "audit_head", "audit_checkpoint"):
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


async def cli(*args: str):
    """Run `exchange ...` as a user would (in a thread: the CLI runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, cli_app, list(args))


async def sql(exchange, statement: str, **params) -> None:
    async with exchange.db.engine.begin() as conn:
        await conn.execute(text(statement), params)


__all__ = ["audit_entity"]
