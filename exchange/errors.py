"""The few exception classes of the exchange.

Domain code raises these; one handler in `exchange.edge` turns each into an HTTP status and an OperationOutcome.
`expression` names the element at fault in FHIRPath (e.g. ``Task.status``) so a partner can fix its request.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Issue:
    severity: str  # fatal | error | warning | information
    code: str  # FHIR issue-type code: invalid, required, value, not-found, conflict, forbidden, ...
    diagnostics: str
    expression: list[str] = field(default_factory=list)

    def to_fhir(self) -> dict:
        out: dict = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = list(self.expression)
        return out


class FhirError(Exception):
    """Base class: an HTTP status plus the issues that explain it."""

    status: int = 400
    code: str = "invalid"

    def __init__(self, diagnostics: str, *, expression: str | list[str] | None = None,
                 issues: list[Issue] | None = None, code: str | None = None, headers: dict | None = None):
        super().__init__(diagnostics)
        if isinstance(expression, str):
            expression = [expression]
        self.issues = issues or [Issue("error", code or self.code, diagnostics, expression or [])]
        self.headers = headers or {}

    @property
    def diagnostics(self) -> str:
        return "; ".join(i.diagnostics for i in self.issues)

    @property
    def outcome_class(self) -> str:
        """Short failure class used by the audit log (no details, no survivor data)."""
        return type(self).__name__


class BadRequest(FhirError):
    status = 400
    code = "invalid"


class Unauthorized(FhirError):
    status = 401
    code = "login"


class Forbidden(FhirError):
    status = 403
    code = "forbidden"


class NotFound(FhirError):
    status = 404
    code = "not-found"


class Gone(FhirError):
    status = 410
    code = "deleted"


class MethodNotAllowed(FhirError):
    status = 405
    code = "not-supported"


class NotAcceptable(FhirError):
    status = 406
    code = "not-supported"


class Conflict(FhirError):
    status = 409
    code = "conflict"


class PreconditionFailed(FhirError):
    status = 412
    code = "conflict"


class PreconditionRequired(FhirError):
    status = 428
    code = "conflict"


class TooManyRequests(FhirError):
    status = 429
    code = "throttled"


class PayloadTooLarge(FhirError):
    status = 413
    code = "too-costly"


class UnsupportedMediaType(FhirError):
    status = 415
    code = "not-supported"


class Unprocessable(FhirError):
    status = 422
    code = "business-rule"
