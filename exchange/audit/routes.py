"""HTTP for the exchange log: AuditEvent search and read, NDJSON export, and the published checkpoint.

Thin: parse, ask `review`/`export`/`checkpoint`, render. Reviews are audited themselves (an auditor's search is a
disclosure of who did what).
"""
from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from exchange.audit import review
from exchange.audit.checkpoint import sign_checkpoint, stored_checkpoint
from exchange.audit.export import export_lines
from exchange.kernel.caller import request_context
from exchange.context import RequestContext
from exchange.errors import BadRequest, Forbidden, MethodNotAllowed, NotFound
from exchange.fhir import bundles, http
from exchange.fhir.dates import parse_fhir_date
from exchange.fhir.interactions.result import Result
from exchange.fhir.search import MAX_INT, page_links
from exchange.kernel.unit import Event, open_unit

router = APIRouter()
fhir = APIRouter(prefix="/fhir/AuditEvent")
JSON_ONLY = [Depends(http.negotiate)]
Ctx = Depends(request_context)
NDJSON = "application/fhir+ndjson"


def _params(request: Request) -> list[tuple[str, str]]:
    return parse_qsl(request.url.query, keep_blank_values=True)


async def _search(request: Request, ctx: RequestContext, params: list[tuple[str, str]]) -> Response:
    exchange = request.app.state.exchange
    base = exchange.settings.fhir_base_url
    matches, total, query = await review.search(exchange, ctx, params)
    links = page_links(base, query.plan, total, len(matches))
    return http.render(Result(200, body=bundles.searchset(base, matches, [], total, links)), request, base)


@fhir.get("", summary="AuditEvent search (auditors; partners see their referrals' events)", dependencies=JSON_ONLY)
async def search_get(request: Request, ctx: RequestContext = Ctx) -> Response:
    return await _search(request, ctx, _params(request))


@fhir.post("/_search", summary="AuditEvent search (POST, form-encoded)", dependencies=JSON_ONLY)
async def search_post(request: Request, ctx: RequestContext = Ctx) -> Response:
    exchange = request.app.state.exchange
    return await _search(request, ctx, await http.read_search_form(request, exchange.settings.max_body_bytes))


def _instant(name: str, raw: str | None):  # noqa: ANN202
    if raw is None:
        return None
    try:
        return parse_fhir_date(raw)[0]
    except ValueError:
        raise BadRequest(f"{name} must be a FHIR date or instant", expression=name) from None


@fhir.get("/$export", summary="NDJSON export of a period of the log (auditors)",
          dependencies=[Depends(http.negotiate_ndjson)],
          responses={200: {"content": {NDJSON: {"schema": {"type": "string",
                                                           "description": "one AuditEvent a line"}}}}})
async def export(request: Request, ctx: RequestContext = Ctx) -> Response:
    exchange = request.app.state.exchange
    viewer = review.viewer_of(ctx, "r")
    if viewer.organization_id is not None:
        raise Forbidden("Only auditors export the exchange log")
    args = dict(_params(request))
    unknown = set(args) - {"_since", "_until", "_format", "_pretty"}
    if unknown:
        raise BadRequest("$export takes only _since and _until", code="not-supported")
    since, until = _instant("_since", args.get("_since")), _instant("_until", args.get("_until"))
    async with open_unit(exchange, ctx, "operation", "AuditEvent", read_only=True) as unit:
        unit.record(Event("operation", "E", "AuditEvent",
                          query=[(k, v) for k, v in args.items() if k in ("_since", "_until")]))
    return StreamingResponse(export_lines(exchange.db, since, until), media_type=NDJSON)


@fhir.get("/{event_id}", summary="AuditEvent read", dependencies=JSON_ONLY)
async def read(event_id: str, request: Request, ctx: RequestContext = Ctx) -> Response:
    exchange = request.app.state.exchange
    viewer = review.viewer_of(ctx, "r")
    async with open_unit(exchange, ctx, "read", "AuditEvent", event_id, read_only=True) as unit:
        row = await review.read_row(unit.conn, event_id, viewer)
        if row is None:
            raise NotFound(f"AuditEvent/{event_id} is not known", expression="AuditEvent.id")
        stored = (await review.render(unit.conn, [row], viewer))[0]
        unit.record(Event("read", "R", "AuditEvent", event_id))
    return http.render(Result(200, stored=stored), request, exchange.settings.fhir_base_url)


@fhir.api_route("", methods=["POST", "PUT", "DELETE", "PATCH"], include_in_schema=False, dependencies=JSON_ONLY)
@fhir.api_route("/{event_id}", methods=["POST", "PUT", "DELETE", "PATCH"], include_in_schema=False,
                dependencies=JSON_ONLY)
async def read_only(request: Request) -> Response:
    raise MethodNotAllowed("AuditEvents are written by the exchange only; they cannot be created, changed or "
                           "deleted through the API", headers={"Allow": "GET, HEAD"})


@router.get("/.well-known/audit-checkpoint", summary="The newest signed checkpoint of the exchange log",
            responses={404: {"description": "No checkpoint signed (at that tree_size)", "content": {
                "application/fhir+json": {"schema": {"type": "object", "description": "OperationOutcome"}}}}})
async def checkpoint(request: Request, tree_size: int | None = Query(default=None, ge=1, le=MAX_INT)) -> Response:
    """Public, like a transparency log: it reveals only how many records the log holds and their hash."""
    exchange = request.app.state.exchange
    found = await stored_checkpoint(exchange, tree_size) if tree_size is not None else \
        (await stored_checkpoint(exchange) or await sign_checkpoint(exchange))
    if found is None:
        raise NotFound("No checkpoint was signed at that tree size", expression="tree_size")
    body = found.as_json()
    body["jwks"] = await exchange.keys.public_jwks()
    auth = exchange.extensions.get("auth")  # the auth package publishes the same keys at its JWKS URL
    if auth is not None:
        body["jwks_uri"] = auth.urls.jwks
    return Response(orjson.dumps(body), media_type="application/json")


router.include_router(fhir)
