"""What the exchange supports: resource types, their search parameters, and the includes it resolves.

One table drives indexing, search parsing and the CapabilityStatement, so the server states exactly what it does.
"""
from __future__ import annotations

from dataclasses import dataclass

RESOURCE_TYPES: tuple[str, ...] = (
    "ServiceRequest", "Task", "Patient", "Consent", "Organization", "HealthcareService", "Location",
    "Practitioner", "PractitionerRole", "DocumentReference", "Procedure", "Subscription",
)


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: str  # token | reference | string | date | uri
    paths: tuple[str, ...]  # dotted element paths from the resource root
    targets: tuple[str, ...] = ()  # reference target types
    documentation: str = ""
    # paths point at extensions: index the value[x] of those with this url (`url#part`: of that part of a complex one)
    extension_url: str | None = None
    # a parameter defined over another one's index rows, not indexed itself: it matches when `via_param` references
    # the target directly, or references a resource of one of the `via` types whose parameter names the target
    via_param: str = ""
    via: tuple[tuple[str, str], ...] = ()
    definition: str | None = None  # the canonical of our SearchParameter (conformance/), for the CapabilityStatement
    flag_extension: str | None = None  # a token `true` when the resource carries an extension with this url
    # the parameter (of the same type, paths and targets) whose index rows this one's are: it writes none of its own
    # and a search on it reads those (`index_name`)
    indexed_as: str = ""


def _p(name: str, type_: str, *paths: str, targets: tuple[str, ...] = (), doc: str = "",
       extension_url: str | None = None, indexed_as: str = "") -> SearchParam:
    return SearchParam(name, type_, tuple(paths), targets, doc, extension_url, indexed_as=indexed_as)


OWNER_ORGANIZATION = "https://gbv-exchange.org/fhir/SearchParameter/task-owner-organization"
TASK_DEADLINE = "https://gbv-exchange.org/fhir/SearchParameter/task-deadline"
TASK_ACKNOWLEDGEMENT_DUE = "https://gbv-exchange.org/fhir/SearchParameter/task-acknowledgement-due"
ACKNOWLEDGEMENT_DUE_EXTENSION = "https://gbv-exchange.org/fhir/StructureDefinition/acknowledgement-due"
ESCALATION_EXTENSION = "https://gbv-exchange.org/fhir/StructureDefinition/escalation"
CONFIDENTIAL_EXTENSION = "https://gbv-exchange.org/fhir/StructureDefinition/confidential"
_CONFIDENTIAL_DOC = "true for an entry whose address and contacts only parties of a referral to it see"


SEARCH_PARAMS: dict[str, dict[str, SearchParam]] = {
    "Task": {p.name: p for p in (
        _p("status", "token", "status"),
        _p("owner", "reference", "owner", targets=("Organization", "HealthcareService", "Practitioner",
                                                  "PractitionerRole")),
        _p("requester", "reference", "requester", targets=("Organization", "Practitioner", "PractitionerRole")),
        _p("focus", "reference", "focus", targets=("ServiceRequest",)),
        _p("patient", "reference", "for", targets=("Patient",)),
        _p("subject", "reference", "for", targets=("Patient",), indexed_as="patient"),
        _p("code", "token", "code"),
        _p("business-status", "token", "businessStatus"),
        _p("authored-on", "date", "authoredOn"),
        _p("modified", "date", "lastModified"),
        _p("intent", "token", "intent"),
        _p("identifier", "token", "identifier"),
        _p("based-on", "reference", "basedOn", targets=("ServiceRequest",)),
        SearchParam("owner-organization", "reference", (), ("Organization",),
                    "The organisation behind the owner: Tasks owned by the Organization or by one of its "
                    "HealthcareServices or PractitionerRoles (an organisation's inbox)",
                    via_param="owner",
                    via=(("HealthcareService", "organization"), ("PractitionerRole", "organization")),
                    definition=OWNER_ORGANIZATION),
        SearchParam("deadline", "date", ("restriction.period.end",),
                    documentation="The action deadline the exchange set from the referral's priority and service "
                                  "type (Task.restriction.period.end), e.g. deadline=lt2026-12-01T12:00:00Z",
                    definition=TASK_DEADLINE),
        SearchParam("acknowledgement-due", "date", ("extension",),
                    documentation="The acknowledgement deadline the exchange set (the acknowledgement-due "
                                  "extension)", extension_url=ACKNOWLEDGEMENT_DUE_EXTENSION,
                    definition=TASK_ACKNOWLEDGEMENT_DUE),
        SearchParam("escalated", "token", (), documentation="true for a referral the exchange escalated to the "
                                                            "coordinating organisation (the escalation extension)",
                    flag_extension=ESCALATION_EXTENSION),
    )},
    "ServiceRequest": {p.name: p for p in (
        _p("status", "token", "status"),
        _p("intent", "token", "intent"),
        _p("category", "token", "category"),
        _p("code", "token", "code"),
        _p("priority", "token", "priority"),
        _p("patient", "reference", "subject", targets=("Patient",)),
        _p("subject", "reference", "subject", targets=("Patient",), indexed_as="patient"),
        _p("requester", "reference", "requester", targets=("Organization", "Practitioner", "PractitionerRole")),
        _p("performer", "reference", "performer", targets=("Organization", "HealthcareService", "Practitioner",
                                                          "PractitionerRole")),
        _p("identifier", "token", "identifier"),
        _p("authored", "date", "authoredOn"),
    )},
    "Patient": {p.name: p for p in (
        _p("identifier", "token", "identifier"),
        _p("gender", "token", "gender"),
        _p("organization", "reference", "managingOrganization", targets=("Organization",)),
    )},
    "Consent": {p.name: p for p in (
        _p("identifier", "token", "identifier"),
        _p("patient", "reference", "patient", targets=("Patient",)),
        _p("status", "token", "status"),
        _p("category", "token", "category"),
        _p("organization", "reference", "organization", targets=("Organization",)),
    )},
    "Organization": {p.name: p for p in (
        _p("name", "string", "name", "alias"),
        _p("type", "token", "type"),
        _p("active", "token", "active"),
        _p("identifier", "token", "identifier"),
        _p("partof", "reference", "partOf", targets=("Organization",)),
    )},
    "HealthcareService": {p.name: p for p in (
        _p("name", "string", "name"),
        _p("service-type", "token", "type"),
        _p("service-category", "token", "category"),
        _p("specialty", "token", "specialty"),
        _p("active", "token", "active"),
        _p("identifier", "token", "identifier"),
        _p("organization", "reference", "providedBy", targets=("Organization",)),
        _p("location", "reference", "location", targets=("Location",)),
        _p("coverage-area", "reference", "coverageArea", targets=("Location",)),
        _p("communication", "token", "communication"),
        _p("characteristic", "token", "characteristic"),
        _p("eligibility", "token", "eligibility.code"),
        _p("capacity", "token", "extension",
           extension_url="https://gbv-exchange.org/fhir/StructureDefinition/capacity#status",
           doc="available | waitlist | closed: whether the service has room now (the provider updates it)"),
        SearchParam("confidential", "token", (), documentation=_CONFIDENTIAL_DOC, flag_extension=CONFIDENTIAL_EXTENSION),
    )},
    "Location": {p.name: p for p in (
        _p("name", "string", "name", "alias"),
        _p("identifier", "token", "identifier"),
        _p("type", "token", "type"),
        _p("organization", "reference", "managingOrganization", targets=("Organization",)),
        _p("partof", "reference", "partOf", targets=("Location",)),
        _p("address-city", "string", "address.city"),
        _p("address-state", "string", "address.state"),
        _p("address-country", "string", "address.country"),
        SearchParam("confidential", "token", (), documentation=_CONFIDENTIAL_DOC, flag_extension=CONFIDENTIAL_EXTENSION),
    )},
    "Practitioner": {p.name: p for p in (
        _p("identifier", "token", "identifier"),
        _p("name", "string", "name.text", "name.family", "name.given"),
        _p("active", "token", "active"),
    )},
    "PractitionerRole": {p.name: p for p in (
        _p("identifier", "token", "identifier"),
        _p("practitioner", "reference", "practitioner", targets=("Practitioner",)),
        _p("organization", "reference", "organization", targets=("Organization",)),
        _p("role", "token", "code"),
        _p("active", "token", "active"),
    )},
    "DocumentReference": {p.name: p for p in (
        _p("identifier", "token", "identifier"),
        _p("patient", "reference", "subject", targets=("Patient",)),
        _p("subject", "reference", "subject", targets=("Patient",), indexed_as="patient"),
        _p("status", "token", "status"),
        _p("type", "token", "type"),
        _p("author", "reference", "author", targets=("Organization", "Practitioner", "PractitionerRole")),
    )},
    "Subscription": {p.name: p for p in (
        _p("status", "token", "status"),
        _p("criteria", "string", "criteria", doc="The topic canonical"),
        _p("url", "uri", "channel.endpoint", doc="The rest-hook endpoint"),
        _p("type", "token", "channel.type"),
        _p("payload", "token", "channel.payload"),
    )},
    "Procedure": {p.name: p for p in (
        _p("identifier", "token", "identifier"),
        _p("patient", "reference", "subject", targets=("Patient",)),
        _p("subject", "reference", "subject", targets=("Patient",), indexed_as="patient"),
        _p("status", "token", "status"),
        _p("code", "token", "code"),
        _p("based-on", "reference", "basedOn", targets=("ServiceRequest",)),
        _p("performed", "date", "performedDateTime", "performedPeriod"),
    )},
}

# The implementation guide's own resources (served read-only from conformance/, never stored or indexed).
CONFORMANCE_TYPES: tuple[str, ...] = ("CodeSystem", "ValueSet", "StructureDefinition", "OperationDefinition",
                                      "SearchParameter", "Measure")
for _kind in CONFORMANCE_TYPES:
    SEARCH_PARAMS[_kind] = {p.name: p for p in (
        _p("url", "uri", "url"),
        _p("name", "string", "name"),
        _p("title", "string", "title"),
        _p("status", "token", "status"),
        _p("version", "token", "version"),
    )}
SEARCH_PARAMS["StructureDefinition"]["type"] = _p("type", "uri", "type")

# _include / _revinclude the server resolves, as "SourceType:param".
INCLUDES: dict[str, tuple[str, ...]] = {
    "Task": ("Task:focus", "Task:patient", "Task:owner", "Task:requester"),
    "ServiceRequest": ("ServiceRequest:patient", "ServiceRequest:requester", "ServiceRequest:performer"),
    "HealthcareService": ("HealthcareService:organization", "HealthcareService:location"),
    "PractitionerRole": ("PractitionerRole:practitioner", "PractitionerRole:organization"),
}
REVINCLUDES: dict[str, tuple[str, ...]] = {
    "ServiceRequest": ("Task:focus",),
    "Patient": ("Task:patient", "ServiceRequest:patient"),
    "Organization": ("HealthcareService:organization",),
}

# Directory types that may be marked confidential (`exchange.auth.confidential`), and per type the search parameters
# over elements a non-party does not see (they never match a confidential entry for it) and the parameter naming the
# entry's own organisation (whose searches do match).
CONFIDENTIAL_TYPES = frozenset({"HealthcareService", "Location"})
CONFIDENTIAL_SEARCH_PARAMS: dict[str, frozenset[str]] = {
    "HealthcareService": frozenset({"location"}),
    "Location": frozenset({"address-city"}),
}
CONFIDENTIAL_OWNER_PARAM = {"HealthcareService": "organization", "Location": "organization"}

# Types whose search parameters may carry survivor-identifying values: their values never reach logs or audit.
SENSITIVE_SEARCH_TYPES = frozenset({"Patient", "Consent", "DocumentReference", "Procedure"})


# Search parameters whose values identify a person: searches using them get opaque page tokens in their links
# (exchange.fhir.page_tokens), never the values. By name, whatever the resource type (an organisation's name too:
# one rule is easier to trust than a list of exceptions).
IDENTIFYING_SEARCH_PARAMS = frozenset({
    "identifier", "name", "family", "given", "phonetic", "birthdate", "death-date", "telecom", "phone", "email",
    "address", "address-city", "address-state", "address-country", "address-postalcode", "address-use",
    "_content", "_text",
})


def search_param(resource_type: str, name: str) -> SearchParam | None:
    return SEARCH_PARAMS.get(resource_type, {}).get(name)


# FHIR R4 defines `patient` and `subject` on Task (both `for`), ServiceRequest, DocumentReference and Procedure (both
# `subject`): the same reference under two names. It is indexed once, as `patient` (migration 1300: a Task's or
# ServiceRequest's index rows were one in seven such copies), and `subject=` searches read those rows.
_INDEXED_AS: dict[tuple[str, str], str] = {
    (resource_type, p.name): p.indexed_as for resource_type, params in SEARCH_PARAMS.items()
    for p in params.values() if p.indexed_as}


def index_name(resource_type: str, name: str) -> str:
    """The `search_index.param` of the rows a search on parameter `name` of `resource_type` reads: its own name, or
    the parameter's whose rows it shares (`SearchParam.indexed_as`)."""
    return _INDEXED_AS.get((resource_type, name), name)
