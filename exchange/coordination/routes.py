"""HTTP for coordination (JSON, bearer token). Thin: the domain is `view.py` and `reroute.py`.

- `GET /coordination/referrals` (coordinator): the referrals escalated to the coordinating organisation;
- `POST /coordination/referrals/{id}/reroute` (coordinator, `{"owner": "HealthcareService/..."}`): propose a re-route;
- `POST /coordination/referrals/{id}/reroute/agree` and `.../decline` (the referral's requester): answer it.
"""
from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from exchange.kernel.caller import request_context
from exchange.context import RequestContext
from exchange.coordination import reroute, view
from exchange.errors import BadRequest
from exchange.store import clock
router = APIRouter()
_OUTCOME = {"application/fhir+json": {"schema": {"type": "object", "description": "OperationOutcome"}}}
_JSON = {"application/json": {"schema": {"type": "object"}}}
_ERRORS = {401: {"description": "No valid access token", "content": _OUTCOME}}


def _json(body: dict) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/coordination/referrals", summary="Referrals escalated to the coordinating organisation (no survivor data)",
            responses={200: {"content": {"application/json": {"schema": {
                "type": "object", "description": "each escalated referral: Task id, status, service type, priority, "
                                                 "area, parties, deadlines, the ages of its steps, a re-route "
                                                 "waiting for the requester; nothing about her"}}}},
                       **_ERRORS, 403: {"description": "Not a coordinator client of the coordinating organisation",
                                        "content": _OUTCOME}})
async def referrals(request: Request, ctx: RequestContext = Depends(request_context)) -> Response:
    return _json(await view.escalated_referrals(request.app.state.exchange, ctx, clock.utcnow()))


async def _body(request: Request) -> dict:
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        raise BadRequest("the body must be a JSON object such as {\"owner\": \"HealthcareService/[id]\"}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object such as {\"owner\": \"HealthcareService/[id]\"}")
    return body


@router.post("/coordination/referrals/{task_id}/reroute", summary="Propose a re-route (coordinator)",
             responses={200: {"content": _JSON}, **_ERRORS,
                        400: {"description": "owner is not a HealthcareService or Organization reference",
                              "content": _OUTCOME},
                        403: {"description": "Not a coordinator client of the coordinating organisation",
                              "content": _OUTCOME},
                        404: {"description": "No referral escalated to the coordinating organisation with this id",
                              "content": _OUTCOME},
                        409: {"description": "The referral has started or closed", "content": _OUTCOME},
                        422: {"description": "The new owner is not in the directory or not taking referrals",
                              "content": _OUTCOME}},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "type": "object", "required": ["owner"],
                 "properties": {"owner": {"type": "string", "description": "HealthcareService/[id] or "
                                                                           "Organization/[id]"}}}}}}})
async def propose(task_id: str, request: Request, ctx: RequestContext = Depends(request_context)) -> Response:
    body = await _body(request)
    return _json(await reroute.propose(request.app.state.exchange, ctx, task_id, body.get("owner"),
                                       clock.utcnow()))


_ANSWER = {200: {"content": _JSON}, **_ERRORS,
           403: {"description": "Not the organisation that sent the referral", "content": _OUTCOME},
           404: {"description": "No referral with this id that the caller is party to", "content": _OUTCOME},
           409: {"description": "No re-route waits; the referral started or closed; or her Consent does not permit "
                                "the new provider", "content": _OUTCOME}}


@router.post("/coordination/referrals/{task_id}/reroute/agree", summary="Agree to a proposed re-route (requester)",
             responses=_ANSWER)
async def agree(task_id: str, request: Request, ctx: RequestContext = Depends(request_context)) -> Response:
    return _json(await reroute.answer(request.app.state.exchange, ctx, task_id, True, clock.utcnow()))


@router.post("/coordination/referrals/{task_id}/reroute/decline",
             summary="Decline a proposed re-route (requester)", responses=_ANSWER)
async def decline(task_id: str, request: Request, ctx: RequestContext = Depends(request_context)) -> Response:
    return _json(await reroute.answer(request.app.state.exchange, ctx, task_id, False, clock.utcnow()))
