"""The hotline caseworker's referral form: find a service in the directory, then send one transaction Bundle.

The Bundle follows the published profiles in `conformance/` (Patient with a case code, her Consent naming the
receiver and the data categories, a ServiceRequest with her contact choices, a Task owned by the receiver) and goes
through `process_bundle` as the signed-in person, so it passes exactly the rules a partner system's does.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import orjson

from exchange.context import RequestContext
from exchange.fhir.interactions import search_type
from exchange.fhir.references import references_in, split_reference
from exchange.fhir.transaction import process_bundle
from exchange.referral import codes, consent_rules, profile
from exchange.kernel.exchange import Exchange
from exchange.store.clock import fhir_instant

BCP47 = "urn:ietf:bcp:47"
LANGUAGES = ("ar", "en", "fr", "fa", "prs", "ps", "ur", "tr", "id", "ms", "bn", "ku", "so")
GENDERS = ("female", "male", "other", "unknown")
PRIORITIES = ("routine", "urgent", "asap", "stat")
# How consent was given, who gave it, a caregiver's relationship to the child and the child's assent: codes of the
# published ValueSets (exchange.referral.consent_rules reads the same), so the form sends what a partner system would.
CONSENT_METHODS = ("verbal-in-person", "verbal-phone", "written")
CONSENT_BY = ("self", *sorted(consent_rules.CAREGIVER_CAPACITIES), consent_rules.BEST_INTEREST)
CAREGIVER_RELATIONSHIPS = ("MTH", "FTH", "GRMTH", "GRFTH", "AUNT", "UNCLE", "SIS", "BRO", "GUARD")
ASSENTS = tuple(sorted(consent_rules.ASSENT_ALLOWS))
# A refusal of the child's consent names the element; the form names the field that sets it.
CHILD_FIELDS = {"capacity": "consent_by", "performer": "caregiver_relationship", "assent": "assent"}
SHARED = (codes.CORE, codes.IDENTITY, codes.CONTACT, codes.INCIDENT, codes.HEALTH)
MAX_TEXT = 500


class FormError(ValueError):
    """A field of the form that is missing or wrong (named; never its value)."""

    def __init__(self, field: str):
        super().__init__(field)
        self.field = field


def choices() -> dict:
    tree = codes.service_types()
    eligibility = [c["code"] for c in codes.load("CodeSystem", "gbv-eligibility").get("concept", [])]
    return {"service_types": list(tree), "languages": LANGUAGES, "eligibility": eligibility, "genders": GENDERS,
            "priorities": PRIORITIES, "consent_methods": CONSENT_METHODS, "consent_by": CONSENT_BY,
            "caregiver_relationships": CAREGIVER_RELATIONSHIPS, "assents": ASSENTS, "shared": SHARED,
            "contact_methods": sorted(profile.SAFE_CONTACT_METHODS)}


@dataclass
class Service:
    id: str
    name: str
    organization_id: str
    organization: str
    types: list[str]
    languages: list[str]


async def find_services(exchange: Exchange, ctx: RequestContext, fields: dict) -> list[Service]:
    """Services with room (capacity available or waitlist) matching the form's type, language, eligibility and area (a directory search)."""
    params = [("capacity", "available,waitlist"), ("_count", "50"), ("_include", "HealthcareService:organization")]
    for field, param in (("service_type", "service-type"), ("language", "communication"),
                         ("eligibility", "eligibility"), ("area", "coverage-area")):
        value = (fields.get(field) or "").strip()
        if value:
            params.append((param, value))
    result = await search_type.search(exchange, ctx, "HealthcareService", params, strict=True)
    entries = [e["resource"] for e in orjson.loads(orjson.dumps(result.body or {})).get("entry", [])]
    orgs = {r["id"]: r.get("name") or r["id"] for r in entries if r["resourceType"] == "Organization"}
    out = []
    for body in entries:
        if body["resourceType"] != "HealthcareService":
            continue
        org = next((t[1] for t in map(split_reference, references_in(body.get("providedBy")))
                    if t and t[0] == "Organization"), None)
        if org is None:
            continue
        out.append(Service(body["id"], body.get("name") or body["id"], org, orgs.get(org, org),
                           codes.codings_in(body.get("type"), codes.SERVICE_TYPE),
                           codes.codings_in(body.get("communication"), BCP47)))
    return out


async def areas(exchange: Exchange, ctx: RequestContext) -> list[tuple[str, str]]:
    """(id, name) of the directory's Locations, for the area filter (services name them in coverageArea); not the
    confidential ones (a shelter's house is no area to choose)."""
    result = await search_type.search(exchange, ctx, "Location", [("confidential:not", "true"), ("_count", "100")],
                                      strict=True)
    entries = [e["resource"] for e in orjson.loads(orjson.dumps(result.body or {})).get("entry", [])]
    return sorted(((r["id"], r.get("name") or r["id"]) for r in entries), key=lambda a: a[1])


def _text(fields: dict, name: str, required: bool = False) -> str | None:
    value = (fields.get(name) or "").strip()[:MAX_TEXT]
    if required and not value:
        raise FormError(name)
    return value or None


def _cc(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code}]}


def _category(code: str) -> str:
    tree = codes.service_types()
    while tree.get(code) is not None:
        code = tree[code]  # type: ignore[assignment]
    return code


def bundle(ctx: RequestContext, fields: dict, services: dict[str, Service], now: datetime,
           deployment: consent_rules.Deployment = consent_rules.Deployment()) -> dict:
    """The referral transaction from the form's fields (FormError names the first field that is wrong)."""
    ref = {n: f"urn:uuid:{uuid.uuid4()}" for n in ("patient", "consent", "request", "task", "form")}
    service = services.get(fields.get("service") or "")
    if service is None:
        raise FormError("service")
    code = fields.get("service_type") or (service.types[0] if service.types else "")
    if code not in codes.service_types() or (service.types and code not in service.types
                                              and not any(codes.is_within(code, t) for t in service.types)):
        code = service.types[0] if service.types else ""
    if code not in codes.service_types():
        raise FormError("service_type")
    case_code = _text(fields, "case_code", required=True)
    if fields.get("consent") != "yes":
        raise FormError("consent")
    shared = sorted({codes.CORE} | {c for c in SHARED if fields.get(f"share_{c}") == "yes"})
    org_ref, receiver = f"Organization/{ctx.organization_id}", f"Organization/{service.organization_id}"
    patient: dict = {"resourceType": "Patient", "identifier": [{"system": f"{codes.BASE}/sid/case-code/"
                                                                           f"{ctx.organization_id}",
                                                                 "value": case_code}]}
    gender = fields.get("gender")
    if gender:
        if gender not in GENDERS:
            raise FormError("gender")
        patient["gender"] = gender
    year = _text(fields, "birth_year")
    if year:
        if not (year.isdigit() and len(year) == 4 and 1900 <= int(year) <= now.year):
            raise FormError("birth_year")
        patient["birthDate"] = year
    language = fields.get("pref_language")
    if language:
        if language not in LANGUAGES:
            raise FormError("pref_language")
        patient["communication"] = [{"language": _cc(BCP47, language), "preferred": True}]
    extensions = []
    if fields.get("interpreter") == "yes":
        extensions.append({"url": codes.EXT_INTERPRETER, "valueBoolean": True})
    needs = _text(fields, "needs")
    if needs:
        extensions.append({"url": codes.EXT_SPECIFIC_NEEDS, "valueCodeableConcept": {"text": needs}})
    if extensions:
        patient["extension"] = extensions
    priority = fields.get("priority") or "routine"
    if priority not in PRIORITIES:
        raise FormError("priority")
    consent = {"resourceType": "Consent", "status": "active",
               "scope": _cc(codes.CONSENT_SCOPE_SYSTEM, "patient-privacy"),
               "category": [_cc("http://loinc.org", "59284-0")], "patient": {"reference": ref["patient"]},
               "dateTime": fhir_instant(now), "organization": [{"reference": org_ref}],
               "policyRule": _cc(codes.ACT_CODE_SYSTEM, codes.OPT_IN),
               "provision": {"type": "permit", "actor": [{"role": _cc(codes.PARTICIPATION_SYSTEM,
                                                                         codes.RECIPIENT_ROLE),
                                                          "reference": {"reference": receiver}}],
                             "code": [_cc(codes.DATA_CATEGORY, c) for c in shared]}}
    form = _consent_given(ctx, fields, consent, ref, now)
    for issue in consent_rules.child_issues(consent, patient, deployment, now):
        element = (issue.expression[0] if issue.expression else "").rsplit(".", 1)[-1]
        raise FormError(next((f for key, f in CHILD_FIELDS.items() if key in element), "consent_by"))
    contact_parts = []
    prohibited = fields.get("do_not_contact") == "yes"
    contact_method = fields.get("contact_method") or ("via-referrer" if prohibited else None)
    if contact_method:
        if contact_method not in profile.SAFE_CONTACT_METHODS:
            raise FormError("contact_method")
        if prohibited and contact_method in profile.DIRECT_METHODS:
            raise FormError("contact_method")
        contact_parts.append({"url": "method", "valueCode": contact_method})
    number = _text(fields, "safe_number")
    if number and not prohibited:
        contact_parts.append({"url": "telecom", "valueContactPoint": {"system": "phone", "value": number}})
    for name, part in (("safe_times", "times"), ("code_word", "code-word"), ("instructions", "instructions")):
        value = _text(fields, name)
        if value:
            contact_parts.append({"url": part, "valueString": value})
    if fields.get("leave_message") in ("yes", "no"):
        contact_parts.append({"url": "leave-message", "valueBoolean": fields["leave_message"] == "yes"})
    request: dict = {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": priority,
                     "category": [_cc(codes.SERVICE_TYPE, _category(code))], "code": _cc(codes.SERVICE_TYPE, code),
                     "subject": {"reference": ref["patient"]}, "requester": {"reference": org_ref},
                     "performer": [{"reference": receiver}], "authoredOn": fhir_instant(now),
                     "supportingInfo": [{"reference": ref["consent"]}]}
    if prohibited:
        request["orderDetail"] = [_cc(codes.REFERRAL_CODES, codes.CONTACT_PROHIBITED)]
    if contact_parts:
        request["extension"] = [{"url": codes.EXT_SAFE_CONTACT, "extension": contact_parts}]
    task: dict = {"resourceType": "Task", "status": "requested", "intent": "order", "priority": priority,
                  "code": _cc(codes.TASK_CODE_SYSTEM, "fulfill"), "focus": {"reference": ref["request"]},
                  "for": {"reference": ref["patient"]}, "requester": {"reference": org_ref},
                  "owner": {"reference": receiver}, "authoredOn": fhir_instant(now)}
    # the deadlines are the exchange's, from the priority and service type (exchange.referral.deadlines)
    entries = [("patient", patient), *([("form", form)] if form else []), ("consent", consent), ("request", request),
               ("task", task)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": ref[name], "resource": body, "request": {"method": "POST", "url": body["resourceType"]}}
        for name, body in entries]}


def _consent_given(ctx: RequestContext, fields: dict, consent: dict, ref: dict, now: datetime) -> dict | None:
    """How she (or her caregiver) consented, recorded on `consent` as the consent-given extension: the method, the
    signed-in worker who obtained it (attested now for a verbal consent), who gave it and the child's assent. A
    written consent's signed form stays on paper with the organisation: the returned DocumentReference says so and
    carries none of it (None for a verbal consent)."""
    method, by = fields.get("consent_method"), fields.get("consent_by") or "self"
    if method not in CONSENT_METHODS:
        raise FormError("consent_method")
    if by not in CONSENT_BY:
        raise FormError("consent_by")
    system = consent_rules.CONSENT_CODES
    worker = {"type": "Practitioner", "identifier": {"system": f"{codes.BASE}/sid/staff/{ctx.organization_id}",
                                                     "value": ctx.user_id or ctx.client_id or "web"}}
    parts = [{"url": "method", "valueCodeableConcept": _cc(system, method)},
             {"url": "obtained-by", "valueReference": worker},
             {"url": "capacity", "valueCodeableConcept": _cc(system, by)}]
    if consent_rules.METHOD_NEEDS.get(method) == "attested":
        parts.append({"url": "attested", "valueDateTime": fhir_instant(now)})
    assent = fields.get("assent")
    if assent:
        if assent not in ASSENTS:
            raise FormError("assent")
        parts.append({"url": "assent", "valueCodeableConcept": _cc(system, assent)})
    consent["extension"] = [{"url": consent_rules.EXT_CONSENT_GIVEN, "extension": parts}]
    if by in consent_rules.CAREGIVER_CAPACITIES:
        relationship = fields.get("caregiver_relationship")
        if relationship not in CAREGIVER_RELATIONSHIPS:
            raise FormError("caregiver_relationship")
        consent["contained"] = [{"resourceType": "RelatedPerson", "id": "caregiver",
                                 "patient": {"reference": ref["patient"]},
                                 "relationship": [_cc(consent_rules.ROLE_CODE_SYSTEM, relationship)]}]
        consent["performer"] = [{"reference": "#caregiver"}]
    if consent_rules.METHOD_NEEDS.get(method) != "form":
        return None
    consent["sourceReference"] = {"reference": ref["form"]}
    return {"resourceType": "DocumentReference", "status": "current", "subject": {"reference": ref["patient"]},
            "type": {"text": "Signed consent form"}, "date": fhir_instant(now),
            "category": [_cc(codes.DATA_CATEGORY, codes.IDENTITY)],
            "content": [{"attachment": {"title": "Signed consent form, kept on paper by the referring "
                                                 "organisation"}}]}


async def send(exchange: Exchange, ctx: RequestContext, fields: dict, now: datetime) -> str:
    """Send the referral; returns the new Task's id."""
    services = {s.id: s for s in await find_services(exchange, ctx, fields)}
    deployment = consent_rules.Deployment.of(exchange.settings)
    result = await process_bundle(exchange, ctx, bundle(ctx, fields, services, now, deployment))
    for entry in (result.body or {}).get("entry", []):
        location = (entry.get("response") or {}).get("location", "")
        if location.startswith("Task/"):
            return location.split("/")[1]
    raise FormError("service")  # pragma: no cover - a transaction that succeeded created its Task
