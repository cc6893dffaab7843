"""HTTP routes of the notification operations (mounted before the generic /fhir/{type}/{id} routes)."""
from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from exchange.kernel.caller import request_context
from exchange.context import RequestContext
from exchange.errors import BadRequest
from exchange.fhir import http
from exchange.notify import operations

router = APIRouter(prefix="/fhir/Subscription", dependencies=[Depends(http.negotiate)], tags=["notifications"])
Ctx = Depends(request_context)


def _render(body: dict, request: Request) -> Response:
    return Response(http.dumps(body, request), media_type=http.FHIR_JSON)


async def _params(request: Request) -> list[tuple[str, str]]:
    """Query parameters, plus those of a POSTed Parameters resource (valueString/valueCode/valueId)."""
    params = parse_qsl(request.url.query, keep_blank_values=True)
    if request.method == "POST":
        body = await http.read_json(request, request.app.state.exchange.settings.max_body_bytes)
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise BadRequest("POST a Parameters resource", expression="Parameters")
        for p in body.get("parameter") or []:
            value = next((p[k] for k in ("valueString", "valueCode", "valueId", "valueUnsignedInt",
                                         "valuePositiveInt", "valueInteger") if k in p), None)
            if isinstance(p, dict) and isinstance(p.get("name"), str) and value is not None:
                params.append((p["name"], str(value)))
    return params


@router.get("/$topics", summary="The subscription topics this server supports", operation_id="subscription_topics")
async def list_topics(request: Request, ctx: RequestContext = Ctx) -> Response:  # noqa: ARG001
    return _render(operations.topics(), request)


@router.get("/$status", summary="$status of the caller's subscriptions", operation_id="subscription_status_type")
@router.post("/$status", summary="$status of the caller's subscriptions (POST)",
             operation_id="subscription_status_type_post")
async def status_type(request: Request, ctx: RequestContext = Ctx) -> Response:
    exchange = request.app.state.exchange
    return _render(await operations.status_type(exchange, ctx, await _params(request)), request)


@router.get("/{subscription_id}/$status", summary="$status of one subscription",
            operation_id="subscription_status")
@router.post("/{subscription_id}/$status", summary="$status of one subscription (POST)",
             operation_id="subscription_status_post")
async def status_instance(subscription_id: str, request: Request, ctx: RequestContext = Ctx) -> Response:
    exchange = request.app.state.exchange
    return _render(await operations.status_instance(exchange, ctx, subscription_id), request)


@router.get("/{subscription_id}/$events", summary="$events: replay a subscription's events by event number",
            operation_id="subscription_events")
@router.post("/{subscription_id}/$events", summary="$events with a Parameters body",
             operation_id="subscription_events_post")
async def events(subscription_id: str, request: Request, ctx: RequestContext = Ctx) -> Response:
    exchange = request.app.state.exchange
    return _render(await operations.events(exchange, ctx, subscription_id, await _params(request)), request)
