"""The CapabilityStatement, derived from the tables the server runs on, so it states exactly what is supported."""
from __future__ import annotations

from datetime import datetime, timezone

from exchange import __version__
from exchange.fhir.definitions import INCLUDES, RESOURCE_TYPES, REVINCLUDES, SEARCH_PARAMS
from exchange.settings import Settings

_PARAM_DOC = {
    "_id": ("token", "Logical id of the resource"),
    "_lastUpdated": ("date", "When the resource version last changed (prefixes eq ne gt ge lt le sa eb ap)"),
}
INTERACTIONS = ("read", "vread", "update", "delete", "history-instance", "create", "search-type")
VALIDATE = "http://hl7.org/fhir/OperationDefinition/Resource-validate"  # R4's own $validate


def _resource(resource_type: str) -> dict:
    params = [{"name": name, "type": type_, "documentation": doc} for name, (type_, doc) in _PARAM_DOC.items()]
    for p in SEARCH_PARAMS.get(resource_type, {}).values():
        param = {"name": p.name, "type": p.type}
        if p.definition:  # one of ours, published in conformance/
            param.update(definition=p.definition, documentation=p.documentation)
        elif p.type == "reference" and len(p.targets) > 0:
            param["documentation"] = (f"Chains one level: {p.name}:{p.targets[0]}.<parameter of {p.targets[0]}>=..., "
                                      f"or {p.name}.<parameter>=... (every target type that has it)")
        params.append(param)
    entry: dict = {
        "type": resource_type,
        "interaction": [{"code": code} for code in INTERACTIONS],
        # versioned, not versioned-update: updates use If-Match; a stale meta.versionId in the body is not refused
        "versioning": "versioned",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": params,
        "operation": [{"name": "validate", "definition": VALIDATE}],
    }
    if INCLUDES.get(resource_type):
        entry["searchInclude"] = list(INCLUDES[resource_type])
    if REVINCLUDES.get(resource_type):
        entry["searchRevInclude"] = list(REVINCLUDES[resource_type])
    return entry


def capability_statement(settings: Settings) -> dict:
    """The statement of the FHIR store itself; packages add to it (see Exchange.capability)."""
    rest: dict = {"mode": "server"}
    rest["resource"] = [_resource(t) for t in RESOURCE_TYPES]
    rest["interaction"] = [{"code": "transaction"}, {"code": "batch"}]
    rest["searchParam"] = [{"name": "_count", "type": "number"}, {"name": "_offset", "type": "number"},
                           {"name": "_sort", "type": "string"}, {"name": "_total", "type": "token"}]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(timezone.utc).date().isoformat(),
        "publisher": "GBV referral exchange",
        "kind": "instance",
        "software": {"name": "GBV referral exchange", "version": __version__},
        "implementation": {"description": "Referral exchange for organisations serving survivors of GBV",
                           "url": settings.fhir_base_url},
        "fhirVersion": "4.0.1",
        "instantiates": ["http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/"
                         "backport-subscription-server-r4"],
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }
