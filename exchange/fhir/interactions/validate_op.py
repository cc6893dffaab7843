"""$validate (POST [type]/$validate): check a resource against R4 and the published profiles without storing it.

Clients such as fhirpy call it before sending. The answer is 200 with an OperationOutcome listing every issue
(severity error when the resource would be refused), or one information issue when there is none. The checks that
need stored data (who is party, what a reference points at, the Task's current state) run only on a real write.
"""
from __future__ import annotations

from exchange.context import RequestContext
from exchange.errors import BadRequest, FhirError, Issue
from exchange.fhir import bundles
from exchange.fhir.interactions.result import Result
from exchange.fhir.validate import check_resource_type, validate_resource
from exchange.kernel.exchange import Exchange
from exchange.kernel.unit import Event, open_unit


def _resource_of(body: object) -> object:
    """The resource itself, or the `resource` parameter of a Parameters body."""
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for parameter in body.get("parameter") or []:
            if isinstance(parameter, dict) and parameter.get("name") == "resource":
                return parameter.get("resource")
        raise BadRequest("$validate takes the resource, or Parameters with a 'resource' parameter",
                         expression="Parameters.parameter")
    return body


async def validate(exchange: Exchange, ctx: RequestContext, resource_type: str, body: object) -> Result:
    check_resource_type(resource_type)
    resource = _resource_of(body)
    try:
        validate_resource(resource, resource_type)
        issues: list[Issue] = [i for check in exchange.profile_checks for i in check(resource_type, resource)]
    except FhirError as exc:
        issues = exc.issues
    async with open_unit(exchange, ctx, "operation", resource_type, read_only=True) as unit:
        unit.record(Event("operation", "E", resource_type))
    if not issues:
        return Result(200, body=bundles.information(f"No issues: valid FHIR R4 {resource_type} and valid against "
                                                    "the exchange's profile"))
    return Result(200, body=bundles.operation_outcome(issues))
