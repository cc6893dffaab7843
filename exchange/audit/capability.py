"""The log's part of the CapabilityStatement: AuditEvent read and search, and the $export operation."""
from __future__ import annotations

from exchange.audit.review import SEARCH_PARAMS


def contribute(statement: dict, exchange) -> None:  # noqa: ANN001
    base = exchange.settings.base_url
    entry = {
        "type": "AuditEvent",
        "documentation": "The exchange log (IHE BALP shapes), written by the exchange only and hash-chained. "
                         "Auditors read all of it; partners the events about their own referrals. Signed "
                         f"checkpoints and the verification key: {base}/.well-known/audit-checkpoint",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "searchParam": [{"name": name, "type": type_, "documentation": doc}
                        for name, (type_, doc) in SEARCH_PARAMS.items()],
        "operation": [{"name": "export", "definition": "https://gbv-exchange.org/fhir/OperationDefinition/audit-export",
                       "documentation": "GET [base]/AuditEvent/$export?_since=&_until= returns NDJSON "
                                        "(application/fhir+ndjson) synchronously, auditors only. Not a Bulk Data "
                                        "kick-off: Prefer: respond-async is not supported"}],
    }
    for rest in statement.get("rest", []):
        rest.setdefault("resource", []).append(entry)
