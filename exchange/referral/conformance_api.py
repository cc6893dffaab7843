"""Read-only FHIR API for the implementation guide's own resources: CodeSystem, ValueSet, StructureDefinition.

They are the JSON files in `conformance/` (the same ones the referral rules validate against), not stored
resources: `GET /fhir/{type}/{id}` reads one, `GET /fhir/{type}?url=...` (also `name`, `status`, `_id`) searches.
"""
from __future__ import annotations

from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from exchange.auth.bearer import request_context
from exchange.errors import BadRequest, NotFound
from exchange.fhir import http
from exchange.fhir.rest import ERROR_RESPONSES
from exchange.referral import codes

KINDS = ("CodeSystem", "ValueSet", "StructureDefinition")
SEARCH_PARAMS = ("url", "name", "status", "_id")
PROFILES = {"ServiceRequest": codes.PROFILE_SERVICE_REQUEST, "Task": codes.PROFILE_TASK,
            "Patient": codes.PROFILE_PATIENT, "Consent": codes.PROFILE_CONSENT,
            "HealthcareService": codes.PROFILE_SERVICE}

_FHIR = {"application/fhir+json": {"schema": {"type": "object", "description": "A FHIR R4 conformance resource"}}}
router = APIRouter(prefix="/fhir", dependencies=[Depends(http.negotiate), Depends(request_context)],
                   responses={k: v for k, v in ERROR_RESPONSES.items() if k in (400, 401, 404, 406, 422)})


def resources(kind: str) -> list[dict]:
    return [orjson.loads(path.read_bytes()) for path in sorted(codes.conformance_dir().glob(f"{kind}-*.json"))]


def _respond(body: dict, request: Request) -> Response:
    return Response(http.dumps(body, request), media_type=http.FHIR_JSON)


def _read(kind: str, resource_id: str, request: Request) -> Response:
    for resource in resources(kind):
        if resource.get("id") == resource_id:
            return _respond(resource, request)
    raise NotFound(f"{kind}/{resource_id} is not known", expression=f"{kind}.id")


def _search(kind: str, request: Request) -> Response:
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("_format", "_pretty")]
    unknown = [k for k, _ in params if k not in SEARCH_PARAMS]
    if unknown:
        raise BadRequest(f"{kind} search supports only {', '.join(SEARCH_PARAMS)}", code="not-supported")
    field = {"_id": "id"}
    matches = [r for r in resources(kind)
               if all(str(r.get(field.get(k, k))) in v.split(",") for k, v in params)]
    base = request.app.state.exchange.settings.fhir_base_url  # never the request's Host header
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(matches),
              "link": [{"relation": "self", "url": f"{base}/{kind}" + (f"?{urlencode(params)}" if params else "")}],
              "entry": [{"fullUrl": f"{base}/{kind}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                        for r in matches]}
    return _respond(bundle, request)


def _routes(kind: str) -> None:
    async def read(resource_id: str, request: Request) -> Response:
        return _read(kind, resource_id, request)

    async def search(request: Request) -> Response:
        return _search(kind, request)

    router.add_api_route(f"/{kind}/{{resource_id}}", read, methods=["GET"], summary=f"read {kind}",
                         responses={200: {"content": _FHIR}})
    router.add_api_route(f"/{kind}", search, methods=["GET"], summary=f"search {kind} (url, name, status, _id)",
                         responses={200: {"content": _FHIR}})


for _kind in KINDS:
    _routes(_kind)


def contribute_capability(body: dict, _exchange) -> None:  # noqa: ANN001
    """Advertise the conformance resources and the referral profiles in the CapabilityStatement."""
    rest = body["rest"][0]
    for entry in rest["resource"]:
        if entry["type"] in PROFILES:
            entry["supportedProfile"] = [PROFILES[entry["type"]]]
    for kind in KINDS:
        rest["resource"].append({"type": kind, "interaction": [{"code": "read"}, {"code": "search-type"}],
                                 "searchParam": [{"name": p, "type": "uri" if p == "url" else "token"}
                                                 for p in SEARCH_PARAMS]})
