"""What every route can answer, added to the generated OpenAPI document so it matches behaviour (issue 13).

FastAPI documents a `422 HTTPValidationError` (application/json) that never happens here: malformed parameters get
400 with an OperationOutcome (`exchange.edge`). Every route can answer 500 and 503 (with Retry-After) and, under
/fhir, 400, 401, 403, 404 and 406 as application/fhir+json; bodies add 413 and 415; every 405 carries `Allow`. FHIR routes answer
application/fhir+json, never plain application/json (the FastAPI default).
"""
from __future__ import annotations

FHIR_JSON = "application/fhir+json"
_OUTCOME = {FHIR_JSON: {"schema": {"type": "object", "description": "OperationOutcome",
                                   "required": ["resourceType", "issue"],
                                   "properties": {"resourceType": {"type": "string", "enum": ["OperationOutcome"]},
                                                  "issue": {"type": "array", "items": {"type": "object"}}}}}}
_TEXT = {"400": "Malformed request or invalid resource", "401": "Missing, invalid, expired or revoked access token",
         "403": "The token's scopes or role do not allow this", "404": "Unknown, or not visible to the caller",
         "405": "Method not supported here", "406": "Only application/fhir+json is served",
         "413": "Body over the configured limit", "415": "Content-Type is not supported",
         "500": "Internal error (nothing was changed)",
         "503": "The database is busy or unreachable (nothing was changed): retry after Retry-After seconds"}
_OPEN = ("/fhir/metadata", "/fhir/.well-known/smart-configuration")  # need no token, answer plain JSON or FHIR


def _outcome(code: str) -> dict:
    return {"description": _TEXT[code], "content": _OUTCOME}


def complete(spec: dict) -> dict:
    for path, item in spec.get("paths", {}).items():
        fhir = path.startswith("/fhir") and path != "/fhir/.well-known/smart-configuration"
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            validation = [c for c, r in responses.items() if "HTTPValidationError" in str(r)]
            for code in validation:
                del responses[code]
            if fhir:
                for code, response in responses.items():
                    content = response.get("content")
                    if content and "application/json" in content:
                        plain = content.pop("application/json")
                        if not content:  # FastAPI's default for a route that documents no type of its own
                            content[FHIR_JSON] = plain
            wanted = ["500", "503"] + (["400"] if validation else [])
            if fhir:
                wanted += ["400", "404", "406"] + ([] if path in _OPEN else ["401", "403"])
                if method in ("post", "put", "patch"):
                    wanted += ["413", "415"]
            for code in wanted:
                responses.setdefault(code, _outcome(code))
            responses["503"].setdefault("headers", {})["Retry-After"] = {
                "description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
            if "405" in responses:
                responses["405"].setdefault("headers", {})["Allow"] = {
                    "description": "The methods this path accepts", "schema": {"type": "string"}}
    schemas = spec.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return spec
