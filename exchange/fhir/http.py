"""HTTP details of the FHIR API: content negotiation, bounded body reading, Prefer, and rendering results."""
from __future__ import annotations

from email.utils import format_datetime
from urllib.parse import parse_qsl

import orjson
from fastapi import Request
from fastapi.responses import Response

from exchange.errors import BadRequest, NotAcceptable, PayloadTooLarge, UnsupportedMediaType
from exchange.fhir import bundles
from exchange.fhir.interactions.result import Result

FHIR_JSON = "application/fhir+json; charset=utf-8"
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
_FORMAT_ALIASES = {"json", "application/fhir+json", "application/json", "application/json+fhir"}
NDJSON_TYPES = ("application/fhir+ndjson", "application/ndjson", "ndjson")


async def negotiate(request: Request) -> None:
    """Only JSON is served: `_format` or Accept asking for anything else gets 406. (async: FastAPI runs a plain
    `def` dependency in a worker thread, a thread hand-off on every request for a few string checks.)"""
    _negotiate(request, _FORMAT_ALIASES, _JSON_TYPES)


async def negotiate_ndjson(request: Request) -> None:
    """For bulk output ($export): NDJSON (application/fhir+ndjson), or whatever accepts JSON."""
    _negotiate(request, _FORMAT_ALIASES | set(NDJSON_TYPES), _JSON_TYPES + NDJSON_TYPES)


def _negotiate(request: Request, formats: set[str], media_types: tuple[str, ...]) -> None:
    fmt = request.query_params.get("_format")
    if fmt is not None:  # an unescaped '+' arrives as a space: application/fhir json
        fmt = fmt.replace(" ", "+")
    if fmt is not None and fmt.split(";")[0].strip() not in formats:
        raise NotAcceptable("_format must be json or application/fhir+json: this server speaks only FHIR JSON",
                            expression="_format")
    accept = request.headers.get("accept")
    if fmt is None and accept:
        kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
        if not any(k in media_types or k in ("*/*", "application/*") for k in kinds):
            raise NotAcceptable("Accept must allow application/fhir+json: this server speaks only FHIR JSON",
                                expression="Accept")


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than the limit of {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"The request body is larger than the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def json_depth(value: object) -> int:
    """How deeply objects and arrays nest in `value` (a level at a time, without recursion: the input may be
    hostile)."""
    depth, level = 0, [value] if isinstance(value, (dict, list)) else []
    while level:
        depth += 1
        level = [child for node in level for child in (node.values() if isinstance(node, dict) else node)
                 if isinstance(child, (dict, list))]
    return depth


async def read_json(request: Request, max_bytes: int) -> object:
    """The body as JSON: a FHIR media type, at most `max_bytes`, nested at most `Settings.max_json_depth` deep."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise UnsupportedMediaType("Content-Type must be application/fhir+json", expression="Content-Type")
    raw = await read_body(request, max_bytes)
    if not raw.strip():
        raise BadRequest("The request body is empty")
    max_depth = request.app.state.exchange.settings.max_json_depth
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise _too_deep(max_depth) from None
        raise BadRequest(f"The request body is not valid JSON (at position {exc.pos})") from None
    if json_depth(body) > max_depth:
        raise _too_deep(max_depth)
    return body


def _too_deep(max_depth: int) -> BadRequest:
    return BadRequest(f"The request body is nested more than {max_depth} levels deep", code="too-costly")


async def read_search_form(request: Request, max_bytes: int) -> list[tuple[str, str]]:
    """The parameters of a POST _search: those in the URL and those in the form body."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("POST _search takes application/x-www-form-urlencoded parameters",
                                   expression="Content-Type")
    raw = await read_body(request, max_bytes)
    try:
        form = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise BadRequest("The form body is not UTF-8") from None
    return parse_qsl(request.url.query, keep_blank_values=True) + form  # FHIR: URL parameters count too


def prefer(request: Request, name: str) -> str | None:
    """The value of one Prefer token (e.g. return, handling), or None."""
    for header in request.headers.getlist("prefer"):
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == name:
                return value.strip().strip('"')
    return None


def strict_handling(request: Request) -> bool:
    return prefer(request, "handling") == "strict"


def dumps(body: object, request: Request) -> bytes:
    pretty = request.query_params.get("_pretty") == "true"
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 if pretty else 0)


def render(result: Result, request: Request, base_url: str, honour_prefer: bool = False) -> Response:
    headers: dict[str, str] = {}
    stored = result.stored
    if stored is not None:
        headers["ETag"] = stored.etag
        headers["Last-Modified"] = format_datetime(stored.last_updated, usegmt=True)
        if result.location:
            headers["Location"] = f"{base_url}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
    if result.status == 204:
        return Response(status_code=204, headers=headers)
    if result.body is not None:
        return Response(dumps(result.body, request), status_code=result.status, headers=headers,
                        media_type=FHIR_JSON)
    wanted = prefer(request, "return") if honour_prefer else None
    if wanted == "minimal":
        return Response(status_code=result.status, headers=headers)
    if wanted == "OperationOutcome":
        outcome = bundles.information(f"{stored.resource_type}/{stored.id} version {stored.version_id} stored")
        return Response(dumps(outcome, request), status_code=result.status, headers=headers, media_type=FHIR_JSON)
    if request.query_params.get("_pretty") == "true":
        content = orjson.dumps(orjson.loads(stored.content), option=orjson.OPT_INDENT_2)
    else:
        content = stored.content.encode()
    return Response(content, status_code=result.status, headers=headers, media_type=FHIR_JSON)
