"""The FHIR REST routes: parse the HTTP request, call the interaction, render the result. No rules live here."""
from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response

from exchange.kernel.caller import request_context
from exchange.context import RequestContext
from exchange.errors import MethodNotAllowed
from exchange.fhir import http
from exchange.fhir.capability import capability_statement
from exchange.fhir.interactions import create, history, read, search_type, update, validate_op
from exchange.fhir.transaction import process_bundle
from exchange.kernel.exchange import Exchange

_FHIR = {"application/fhir+json": {"schema": {"type": "object", "description": "A FHIR R4 resource"}}}
_OUTCOME = {"application/fhir+json": {"schema": {"type": "object", "description": "OperationOutcome"}}}
ERROR_RESPONSES = {
    400: {"description": "Malformed request or invalid resource", "content": _OUTCOME},
    401: {"description": "Missing, invalid, expired or revoked access token", "content": _OUTCOME},
    403: {"description": "The token's scopes do not allow this interaction", "content": _OUTCOME},
    404: {"description": "Unknown, or not visible to the caller", "content": _OUTCOME},
    405: {"description": "Method not supported here (Allow lists those that are); PUT to an unknown id (no "
                         "update as create)", "content": _OUTCOME},
    406: {"description": "Only application/fhir+json is served", "content": _OUTCOME},
    409: {"description": "Version conflict or forbidden state change", "content": _OUTCOME},
    410: {"description": "The resource was deleted", "content": _OUTCOME},
    412: {"description": "If-Match is stale, or If-None-Exist matched several", "content": _OUTCOME},
    413: {"description": "Body over the configured limit", "content": _OUTCOME},
    415: {"description": "Content-Type is not application/fhir+json", "content": _OUTCOME},
    428: {"description": "If-Match is required (claiming an open referral)", "content": _OUTCOME},
    422: {"description": "A business rule (referral profile, workflow, consent) refused it", "content": _OUTCOME},
}

router = APIRouter(prefix="/fhir", dependencies=[Depends(http.negotiate)], responses=ERROR_RESPONSES)

Ctx = Depends(request_context)


def exchange_of(request: Request) -> Exchange:
    return request.app.state.exchange


def _query(request: Request) -> list[tuple[str, str]]:
    return parse_qsl(request.url.query, keep_blank_values=True)


@router.get("/metadata", summary="CapabilityStatement", responses={200: {"content": _FHIR}})
async def metadata(request: Request) -> Response:
    exchange = exchange_of(request)
    body = capability_statement(exchange.settings)
    for contribute in exchange.capability:
        contribute(body, exchange)
    return Response(http.dumps(body, request), media_type=http.FHIR_JSON)


_NOT_SUPPORTED = {405: {"description": "history at type or system level is not supported (Allow is empty)",
                        "content": _OUTCOME, "headers": {"Allow": {"schema": {"type": "string"}}}}}


def _history_not_supported() -> MethodNotAllowed:
    return MethodNotAllowed("history-type and history-system are not supported: read one resource's history at "
                            "[type]/[id]/_history", expression="_history", headers={"Allow": ""})


@router.get("/_history", summary="history (system): not supported", responses=_NOT_SUPPORTED)
async def history_system(ctx: RequestContext = Ctx) -> Response:
    raise _history_not_supported()


@router.get("/{resource_type}/_history", summary="history (type): not supported", responses=_NOT_SUPPORTED)
async def history_type(resource_type: str, ctx: RequestContext = Ctx) -> Response:
    raise _history_not_supported()


@router.post("", summary="transaction or batch Bundle", responses={200: {"content": _FHIR}})
@router.post("/", include_in_schema=False)
async def bundle(request: Request, ctx: RequestContext = Ctx) -> Response:
    exchange = exchange_of(request)
    body = await http.read_json(request, exchange.settings.max_body_bytes)
    result = await process_bundle(exchange, ctx, body, http.prefer(request, "return"))
    return http.render(result, request, exchange.settings.fhir_base_url)


@router.get("/{resource_type}", summary="search (GET)", responses={200: {"content": _FHIR}})
async def search_get(resource_type: str, request: Request, ctx: RequestContext = Ctx) -> Response:
    exchange = exchange_of(request)
    result = await search_type.search(exchange, ctx, resource_type, _query(request), http.strict_handling(request))
    return http.render(result, request, exchange.settings.fhir_base_url)


@router.post("/{resource_type}/_search", summary="search (POST, form-encoded)", responses={200: {"content": _FHIR}})
async def search_post(resource_type: str, request: Request, ctx: RequestContext = Ctx) -> Response:
    exchange = exchange_of(request)
    params = await http.read_search_form(request, exchange.settings.max_body_bytes)
    result = await search_type.search(exchange, ctx, resource_type, params, http.strict_handling(request))
    return http.render(result, request, exchange.settings.fhir_base_url)


@router.post("/{resource_type}/$validate", summary="$validate: check a resource against R4 and the profiles",
             responses={200: {"description": "OperationOutcome: the issues found (none: one information issue)",
                              "content": _OUTCOME}})
async def validate_resource_op(resource_type: str, request: Request, ctx: RequestContext = Ctx) -> Response:
    exchange = exchange_of(request)
    body = await http.read_json(request, exchange.settings.max_body_bytes)
    return http.render(await validate_op.validate(exchange, ctx, resource_type, body), request,
                       exchange.settings.fhir_base_url)


@router.post("/{resource_type}", status_code=201, summary="create (If-None-Exist for conditional create)",
             responses={201: {"content": _FHIR}, 200: {"description": "If-None-Exist matched one", "content": _FHIR}})
async def create_resource(resource_type: str, request: Request, ctx: RequestContext = Ctx,
                          if_none_exist: str | None = Header(default=None)) -> Response:
    exchange = exchange_of(request)
    body = await http.read_json(request, exchange.settings.max_body_bytes)
    result = await create.create(exchange, ctx, resource_type, body, if_none_exist)
    return http.render(result, request, exchange.settings.fhir_base_url, honour_prefer=True)


@router.get("/{resource_type}/{resource_id}", summary="read", responses={200: {"content": _FHIR}})
async def read_resource(resource_type: str, resource_id: str, request: Request, ctx: RequestContext = Ctx
                        ) -> Response:
    exchange = exchange_of(request)
    result = await read.read(exchange, ctx, resource_type, resource_id)
    return http.render(result, request, exchange.settings.fhir_base_url)


@router.put("/{resource_type}/{resource_id}", summary="update (If-Match for version-aware update)",
            responses={200: {"content": _FHIR}})
async def update_resource(resource_type: str, resource_id: str, request: Request, ctx: RequestContext = Ctx,
                          if_match: str | None = Header(default=None)) -> Response:
    exchange = exchange_of(request)
    body = await http.read_json(request, exchange.settings.max_body_bytes)
    result = await update.update(exchange, ctx, resource_type, resource_id, body, if_match)
    return http.render(result, request, exchange.settings.fhir_base_url, honour_prefer=True)


@router.delete("/{resource_type}/{resource_id}", status_code=204, summary="delete")
async def delete_resource(resource_type: str, resource_id: str, request: Request, ctx: RequestContext = Ctx,
                          if_match: str | None = Header(default=None)) -> Response:
    exchange = exchange_of(request)
    result = await update.delete(exchange, ctx, resource_type, resource_id, if_match)
    return http.render(result, request, exchange.settings.fhir_base_url)


@router.get("/{resource_type}/{resource_id}/_history", summary="history (instance)", responses={200: {"content": _FHIR}})
async def history_resource(resource_type: str, resource_id: str, request: Request, ctx: RequestContext = Ctx
                           ) -> Response:
    exchange = exchange_of(request)
    result = await history.history_instance(exchange, ctx, resource_type, resource_id, _query(request))
    return http.render(result, request, exchange.settings.fhir_base_url)


@router.get("/{resource_type}/{resource_id}/_history/{version_id}", summary="vread", responses={200: {"content": _FHIR}})
async def vread_resource(resource_type: str, resource_id: str, version_id: str, request: Request,
                         ctx: RequestContext = Ctx) -> Response:
    exchange = exchange_of(request)
    result = await read.vread(exchange, ctx, resource_type, resource_id, version_id)
    return http.render(result, request, exchange.settings.fhir_base_url)

