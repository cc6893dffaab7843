"""The referral package's routes: the implementation guide's own resources, read-only (CodeSystem, ValueSet,
StructureDefinition, ...), and the operation `POST /fhir/Task/{id}/$reoffer` (thin: parse, `reoffer`, render).

They are the JSON files in `conformance/` (the same ones the referral rules validate against), not stored
resources: `GET /fhir/{type}/{id}` reads one; `GET /fhir/{type}?url=...` and `POST /fhir/{type}/_search` search
with the same parser as every other type (`name` and `title` are string searches; `_count`, `_offset`, `_sort`,
`_total`; unknown parameters ignored unless `Prefer: handling=strict`).
"""
from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from exchange.kernel.caller import request_context
from exchange.errors import BadRequest, NotFound
from exchange.fhir import http
from exchange.fhir.definitions import CONFORMANCE_TYPES, SEARCH_PARAMS
from exchange.fhir.search import Criterion, page_links, parse_search
from exchange.fhir.routes import ERROR_RESPONSES
from exchange.context import RequestContext
from exchange.referral import codes, reoffer as reoffer_op

KINDS = CONFORMANCE_TYPES
_PARAMS = ("_id", *SEARCH_PARAMS["CodeSystem"])
PROFILES = {"ServiceRequest": codes.PROFILE_SERVICE_REQUEST, "Task": codes.PROFILE_TASK,
            "Patient": codes.PROFILE_PATIENT, "Consent": codes.PROFILE_CONSENT,
            "HealthcareService": codes.PROFILE_SERVICE}

REOFFER = "https://gbv-exchange.org/fhir/OperationDefinition/task-reoffer"
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


def _matches(resource: dict, criterion: Criterion) -> bool:
    if criterion.type == "id":
        return resource.get("id") in criterion.values
    value = resource.get(criterion.name)
    if criterion.modifier == "missing":
        return (value is None) == criterion.values[0]
    if not isinstance(value, str):
        return False
    if criterion.type == "string":  # FHIR string search: case-insensitive starts-with unless :exact / :contains
        if criterion.modifier == "exact":
            return value in criterion.values
        text = value.casefold()
        if criterion.modifier == "contains":
            return any(v.casefold() in text for v in criterion.values)
        return any(text.startswith(v.casefold()) for v in criterion.values)
    if criterion.type == "token":
        return any(code == value for _system, code, _ in criterion.values)
    return value in criterion.values


def _search(kind: str, params: list[tuple[str, str]], request: Request) -> Response:
    settings = request.app.state.exchange.settings
    plan = parse_search(kind, params, strict=http.strict_handling(request), default_count=settings.default_page_size,
                        max_count=settings.max_page_size, limits=settings.search_limits)
    if any(c.type == "lastUpdated" for c in plan.criteria):
        raise BadRequest(f"{kind} search does not support _lastUpdated", expression="_lastUpdated",
                         code="not-supported")
    found = [r for r in resources(kind) if all(_matches(r, c) for c in plan.criteria)]
    for column, descending in reversed(plan.sort):  # _id, or _lastUpdated: the resource's date
        found.sort(key=lambda r: str(r.get("id" if column == "id" else "date") or ""), reverse=descending)
    page = [] if plan.summary_count else found[plan.offset:plan.offset + plan.count]
    base = settings.fhir_base_url
    bundle: dict = {"resourceType": "Bundle", "type": "searchset"}
    if plan.total or plan.summary_count:
        bundle["total"] = len(found)
    bundle["link"] = page_links(base, plan, len(found), len(page))
    if page:
        bundle["entry"] = [{"fullUrl": f"{base}/{kind}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                           for r in page]
    return _respond(bundle, request)


def _routes(kind: str) -> None:
    async def read(resource_id: str, request: Request) -> Response:
        return _read(kind, resource_id, request)

    async def search(request: Request) -> Response:
        return _search(kind, parse_qsl(request.url.query, keep_blank_values=True), request)

    async def search_post(request: Request) -> Response:
        params = await http.read_search_form(request, request.app.state.exchange.settings.max_body_bytes)
        return _search(kind, params, request)

    router.add_api_route(f"/{kind}/{{resource_id}}", read, methods=["GET"], summary=f"read {kind}",
                         responses={200: {"content": _FHIR}})
    router.add_api_route(f"/{kind}", search, methods=["GET"], summary=f"search {kind} ({', '.join(_PARAMS)})",
                         responses={200: {"content": _FHIR}})
    router.add_api_route(f"/{kind}/_search", search_post, methods=["POST"], summary=f"search {kind} (POST)",
                         responses={200: {"content": _FHIR}})


for _kind in KINDS:
    _routes(_kind)


@router.post("/Task/{task_id}/$reoffer", status_code=201, operation_id="task_reoffer",
             summary="$reoffer: the requester offers a rejected, cancelled or failed referral again (a new Task)",
             responses={201: {"content": {"application/fhir+json": {"schema": {"type": "object",
                                                                               "description": "The new Task"}}}},
                        **{k: v for k, v in ERROR_RESPONSES.items() if k in (403, 409, 410, 413, 415)}})
async def reoffer(task_id: str, request: Request, ctx: RequestContext = Depends(request_context)) -> Response:
    exchange = request.app.state.exchange
    body = await http.read_json(request, exchange.settings.max_body_bytes)
    result = await reoffer_op.reoffer(exchange, ctx, task_id, body)
    return http.render(result, request, exchange.settings.fhir_base_url, honour_prefer=True)


def contribute_capability(body: dict, _exchange) -> None:  # noqa: ANN001
    """Advertise the conformance resources, the referral profiles and $reoffer in the CapabilityStatement."""
    rest = body["rest"][0]
    for entry in rest["resource"]:
        if entry["type"] in PROFILES:
            entry["supportedProfile"] = [PROFILES[entry["type"]]]
        if entry["type"] == "Task":
            entry.setdefault("operation", []).append({"name": "reoffer", "definition": REOFFER})
    for kind in KINDS:
        params = [{"name": "_id", "type": "token"}] + [{"name": p.name, "type": p.type}
                                                        for p in SEARCH_PARAMS[kind].values()]
        rest["resource"].append({"type": kind, "interaction": [{"code": "read"}, {"code": "search-type"}],
                                 "searchParam": params})
