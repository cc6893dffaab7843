"""HTTP for statistics: `GET /stats/referrals` (JSON). Thin: the parameters go to `exchange.stats.service`."""
from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from exchange.kernel.caller import request_context
from exchange.context import RequestContext
from exchange.fhir import http
from exchange.stats.aggregate import BREAKDOWNS
from exchange.stats.measure import measure_report
from exchange.stats.service import referral_statistics

router = APIRouter()
OPERATION_NAMES = {"start": "periodStart", "end": "periodEnd", "reportType": "reportType"}
_OUTCOME = {"application/fhir+json": {"schema": {"type": "object", "description": "OperationOutcome"}}}


@router.get("/stats/referrals", summary="Referral statistics with disclosure control (auditors, coordinators)",
            responses={200: {"content": {"application/json": {"schema": {
                "type": "object", "description": "counts by outcome, rates, medians and reasons by category; "
                                                 "small counts as \"<5\", hidden complements as \"suppressed\""}}}},
                       400: {"description": "A parameter is unknown, repeated or not valid", "content": _OUTCOME},
                       401: {"description": "No valid access token", "content": _OUTCOME},
                       403: {"description": "Not an auditor or coordinator client, or no MeasureReport scope",
                             "content": _OUTCOME}},
            openapi_extra={"parameters": [
                {"name": "by", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["month", "service-type", "area", "priority", "organization"]}},
                {"name": "start", "in": "query", "required": False,
                 "schema": {"type": "string", "pattern": r"^\d{4}-\d{2}(-\d{2})?$"}},
                {"name": "end", "in": "query", "required": False,
                 "schema": {"type": "string", "pattern": r"^\d{4}-\d{2}(-\d{2})?$"}}]})
async def referrals(request: Request, ctx: RequestContext = Depends(request_context)) -> Response:
    exchange = request.app.state.exchange
    found = await referral_statistics(exchange, ctx, parse_qsl(request.url.query, keep_blank_values=True))
    return Response(orjson.dumps(found.as_json()), media_type="application/json")


_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}(-\d{2})?$"}


@router.get("/fhir/Measure/referral-outcomes/$evaluate-measure", dependencies=[Depends(http.negotiate)],
            summary="Referral statistics as a FHIR MeasureReport (auditors, coordinators)",
            responses={200: {"content": {"application/fhir+json": {"schema": {
                "type": "object", "description": "MeasureReport of Measure/referral-outcomes, every breakdown a "
                                                 "stratifier; hidden counts masked"}}}},
                       400: {"description": "A parameter is unknown, repeated or not valid", "content": _OUTCOME},
                       401: {"description": "No valid access token", "content": _OUTCOME},
                       403: {"description": "Not an auditor or coordinator client, or no MeasureReport scope",
                             "content": _OUTCOME},
                       406: {"description": "Not acceptable", "content": _OUTCOME}},
            openapi_extra={"parameters": [
                {"name": "periodStart", "in": "query", "required": False, "schema": _DATE},
                {"name": "periodEnd", "in": "query", "required": False, "schema": _DATE},
                {"name": "reportType", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["population"]}}]})
async def evaluate_measure(request: Request, ctx: RequestContext = Depends(request_context)) -> Response:
    exchange = request.app.state.exchange
    found = await referral_statistics(exchange, ctx, parse_qsl(request.url.query, keep_blank_values=True),
                                      names=OPERATION_NAMES, ignored=frozenset({"_format", "_pretty"}),
                                      median_breakdowns=tuple(BREAKDOWNS))
    return Response(http.dumps(measure_report(found), request), media_type=http.FHIR_JSON)
