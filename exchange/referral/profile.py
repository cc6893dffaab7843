"""The referral profiles' structural rules: what a resource must hold on its own, without reading others.

One function per profile in `conformance/StructureDefinition-*.json`; each returns the issues it finds (empty when
the resource conforms). Cross-resource rules (consent, the directory, the Task's focus) live in their own modules.
Messages name elements and codes, never the values a partner sent (they may be survivor data).
"""
from __future__ import annotations

from exchange.fhir.references import references_in, split_reference
from exchange.errors import Issue
from exchange.referral import codes, consent_rules, directory
from exchange.referral.refusal import issue

SAFE_CONTACT_PARTS = {"method": "valueCode", "telecom": "valueContactPoint", "times": "valueString",
                      "leave-message": "valueBoolean", "code-word": "valueString", "instructions": "valueString"}
SAFE_CONTACT_METHODS = frozenset({"phone", "sms", "email", "in-person", "via-referrer", "she-will-come"})
DIRECT_METHODS = frozenset({"phone", "sms", "email"})

# Minimum necessary: the only Patient elements a referral carries. name/birthDate (full) count as `identity`,
# telecom/address as `contact`; the receiver gets them only when the Consent covers that category.
PATIENT_ELEMENTS = frozenset({"resourceType", "id", "meta", "identifier", "active", "gender", "birthDate",
                              "communication", "extension", "name", "telecom", "address", "managingOrganization"})
PATIENT_EXTENSIONS = frozenset({codes.EXT_INTERPRETER, codes.EXT_SPECIFIC_NEEDS})


def _typed_reference(value, expected: tuple[str, ...]) -> bool:  # noqa: ANN001
    refs = list(references_in(value))
    if not refs:
        return False
    for ref in refs:
        split = split_reference(ref)
        if split is None or split[0] not in expected:
            return False
    return True


def service_request(body: dict) -> list[Issue]:
    rule = "referral-servicerequest"
    out: list[Issue] = []
    if body.get("intent") != "order":
        out.append(issue(rule, "intent must be 'order'", "ServiceRequest.intent"))
    if not _typed_reference(body.get("subject"), ("Patient",)):
        out.append(issue(rule, "subject must reference the survivor's Patient", "ServiceRequest.subject"))
    if not _typed_reference(body.get("requester"), ("Organization", "PractitionerRole")):
        out.append(issue(rule, "requester must reference the sending Organization (or a PractitionerRole of it)",
                         "ServiceRequest.requester"))
    if not _typed_reference(body.get("performer"), ("Organization", "HealthcareService")):
        out.append(issue(rule, "performer must reference the receiving Organization(s) or HealthcareService(s)",
                         "ServiceRequest.performer"))
    categories = codes.codings_in(body.get("category"), codes.SERVICE_TYPE)
    tree = codes.service_types()
    if not categories or any(tree.get(c, "-") is not None for c in categories):
        out.append(issue(rule, f"category must hold a service category of {codes.SERVICE_TYPE} (a top-level code)",
                         "ServiceRequest.category"))
    requested = codes.codes_in(body.get("code"), codes.SERVICE_TYPE)
    if not requested or any(c not in tree for c in requested):
        out.append(issue(rule, f"code must hold a code of {codes.SERVICE_TYPE}", "ServiceRequest.code"))
    elif categories and not all(any(codes.is_within(c, cat) for cat in categories) for c in requested):
        out.append(issue(rule, "code must be the category or one of its descendants", "ServiceRequest.code"))
    consents = [r for r in references_in(body.get("supportingInfo")) if (split_reference(r) or ("",))[0] == "Consent"]
    if not consents and consent_rules.emergency_reason(body) is None:
        out.append(issue("consent-required", "supportingInfo must reference the survivor's Consent to this referral "
                                             "(or the referral invokes the emergency-exception extension)",
                         "ServiceRequest.supportingInfo"))
    out.extend(consent_rules.emergency_issues(body))
    out.extend(_safe_contact(body))
    return out


def contact_prohibited(body: dict) -> bool:
    return codes.CONTACT_PROHIBITED in codes.codings_in(body.get("orderDetail"), codes.REFERRAL_CODES)


def _safe_contact(body: dict) -> list[Issue]:
    rule = "safe-contact"
    out: list[Issue] = []
    found = [e for e in body.get("extension") or [] if isinstance(e, dict) and e.get("url") == codes.EXT_SAFE_CONTACT]
    if len(found) > 1:
        out.append(issue(rule, "at most one safe-contact extension", "ServiceRequest.extension"))
    for ext in found:
        method = None
        for i, part in enumerate(ext.get("extension") or []):
            where = f"ServiceRequest.extension('{codes.EXT_SAFE_CONTACT}').extension[{i}]"
            name = part.get("url") if isinstance(part, dict) else None
            value_key = SAFE_CONTACT_PARTS.get(name)
            if value_key is None:
                out.append(issue(rule, f"unknown part; allowed: {', '.join(SAFE_CONTACT_PARTS)}", where))
            elif value_key not in part:
                out.append(issue(rule, f"part '{name}' needs {value_key}", where))
            elif name == "method":
                method = part[value_key]
                if method not in SAFE_CONTACT_METHODS:
                    out.append(issue(rule, f"method must be one of {', '.join(sorted(SAFE_CONTACT_METHODS))}", where))
        if any(key.startswith("value") for key in ext):
            out.append(issue(rule, "safe-contact is a complex extension: no value[x]",
                             f"ServiceRequest.extension('{codes.EXT_SAFE_CONTACT}')"))
        if contact_prohibited(body) and method in DIRECT_METHODS:
            out.append(issue(rule, f"contacting the survivor is prohibited (orderDetail {codes.CONTACT_PROHIBITED}) "
                                   f"but the safe-contact method is direct ({method})", "ServiceRequest.orderDetail"))
    return out


def task(body: dict) -> list[Issue]:
    rule = "referral-task"
    out: list[Issue] = []
    if body.get("intent") != "order":
        out.append(issue(rule, "intent must be 'order'", "Task.intent"))
    if "fulfill" not in codes.codes_in(body.get("code"), codes.TASK_CODE_SYSTEM):
        out.append(issue(rule, f"code must be {codes.TASK_CODE_SYSTEM}|fulfill", "Task.code"))
    if not _typed_reference(body.get("focus"), ("ServiceRequest",)):
        out.append(issue(rule, "focus must reference the referral's ServiceRequest", "Task.focus"))
    if not _typed_reference(body.get("for"), ("Patient",)):
        out.append(issue(rule, "for must reference the survivor's Patient", "Task.for"))
    if not _typed_reference(body.get("requester"), ("Organization", "PractitionerRole")):
        out.append(issue(rule, "requester must reference the sending Organization", "Task.requester"))
    if body.get("owner") is not None and not _typed_reference(body.get("owner"),
                                                                ("Organization", "HealthcareService")):
        out.append(issue(rule, "owner must reference the receiving Organization or HealthcareService, or be absent "
                               "for an open referral", "Task.owner"))
    if not body.get("authoredOn"):
        out.append(issue(rule, "authoredOn is required (the overdue clock starts there)", "Task.authoredOn"))
    return out


def patient(body: dict) -> list[Issue]:
    rule = "minimum-necessary"
    out: list[Issue] = []
    for key in body:
        if key not in PATIENT_ELEMENTS:
            out.append(issue(rule, f"Patient.{key} is not shared in a referral; it stays with the organisation that "
                                   "holds it", f"Patient.{key}"))
    for i, ext in enumerate(body.get("extension") or []):
        if isinstance(ext, dict) and ext.get("url") not in PATIENT_EXTENSIONS:
            out.append(issue(rule, "only the interpreter-needed and specific-needs extensions are shared",
                             f"Patient.extension[{i}]"))
    if not body.get("identifier"):
        out.append(issue("referral-patient", "identifier is required: the referring organisation's case code",
                         "Patient.identifier"))
    return out


def _identifying(identifiers) -> bool:  # noqa: ANN001
    """Identifiers other than the referrer's case code (the first, untyped, of a case system) identify her: a
    national id, a passport or UNHCR number, any identifier typed or systemed as such."""
    for i, identifier in enumerate(identifiers if isinstance(identifiers, list) else []):
        if not isinstance(identifier, dict):
            continue
        system = str(identifier.get("system") or "").lower()
        if i > 0 or identifier.get("type") or any(marker in system for marker in codes.IDENTITY_SYSTEM_MARKERS):
            return True
    return False


def patient_categories(body: dict) -> set[str]:
    """The data categories a Patient resource discloses."""
    found = {codes.CORE}
    birth = body.get("birthDate")
    if body.get("name") or (isinstance(birth, str) and len(birth) >= 10) or _identifying(body.get("identifier")):
        found.add(codes.IDENTITY)
    if body.get("telecom") or body.get("address"):
        found.add(codes.CONTACT)
    return found


def consent(body: dict) -> list[Issue]:
    rule = "referral-consent"
    out: list[Issue] = []
    if "patient-privacy" not in codes.codes_in(body.get("scope"), codes.CONSENT_SCOPE_SYSTEM):
        out.append(issue(rule, f"scope must be {codes.CONSENT_SCOPE_SYSTEM}|patient-privacy", "Consent.scope"))
    if not _typed_reference(body.get("patient"), ("Patient",)):
        out.append(issue(rule, "patient must reference the survivor's Patient", "Consent.patient"))
    if not _typed_reference(body.get("organization"), ("Organization",)):
        out.append(issue(rule, "organization must reference the organisation that holds the consent",
                         "Consent.organization"))
    if not body.get("dateTime"):
        out.append(issue(rule, "dateTime (when she consented) is required", "Consent.dateTime"))
    provision = body.get("provision")
    if body.get("status") == "active":
        if not isinstance(provision, dict):
            out.append(issue(rule, "an active referral Consent needs a provision", "Consent.provision"))
            return out
        recipients = [a for a in provision.get("actor") or [] if _is_recipient(a)]
        if not recipients:
            out.append(issue(rule, f"provision.actor must name the permitted recipient(s) with role "
                                   f"{codes.PARTICIPATION_SYSTEM}|{codes.RECIPIENT_ROLE}", "Consent.provision.actor"))
        for i, actor in enumerate(recipients):
            if not _typed_reference(actor.get("reference"), ("Organization",)):
                out.append(issue(rule, "a recipient must be an Organization (R4 allows no HealthcareService here)",
                                 f"Consent.provision.actor[{i}].reference"))
        if codes.CORE not in codes.codings_in(provision.get("code"), codes.DATA_CATEGORY):
            out.append(issue(rule, f"provision.code must list the data categories she agreed to share, at least "
                                   f"{codes.DATA_CATEGORY}|{codes.CORE}", "Consent.provision.code"))
    out.extend(consent_rules.given_issues(body))
    return out


def _is_recipient(actor) -> bool:  # noqa: ANN001
    return isinstance(actor, dict) and codes.RECIPIENT_ROLE in codes.codes_in(actor.get("role"),
                                                                              codes.PARTICIPATION_SYSTEM)


def recipient_provisions(body: dict) -> list[tuple[str, list[str], set[str]]]:
    """(permit|deny, recipient references, data categories) of the Consent's provision and its nested ones.

    A nested provision without actors or codes inherits those of the top-level provision; a top-level provision
    without codes covers every category (FHIR: no code restriction).
    """
    top = body.get("provision")
    if not isinstance(top, dict):
        return []
    top_actors = [r for a in top.get("actor") or [] if _is_recipient(a) for r in references_in(a.get("reference"))]
    # FHIR: a provision without code applies to all data (the referral profile requires codes from partners)
    top_codes = set(codes.codings_in(top.get("code"), codes.DATA_CATEGORY)) or set(codes.hierarchy("gbv-data-category"))
    out = [(top.get("type") or "permit", top_actors, top_codes)]
    for nested in top.get("provision") or []:
        if not isinstance(nested, dict):
            continue
        actors = [r for a in nested.get("actor") or [] if _is_recipient(a)
                  for r in references_in(a.get("reference"))] or top_actors
        cats = set(codes.codings_in(nested.get("code"), codes.DATA_CATEGORY)) or top_codes
        out.append((nested.get("type") or "permit", actors, cats))
    return out


def healthcare_service(body: dict) -> list[Issue]:
    rule = "directory-service"
    out: list[Issue] = []
    if not _typed_reference(body.get("providedBy"), ("Organization",)):
        out.append(issue(rule, "providedBy must reference the Organization offering the service",
                         "HealthcareService.providedBy"))
    types = codes.codings_in(body.get("type"), codes.SERVICE_TYPE)
    tree = codes.service_types()
    if not types or any(t not in tree for t in types):
        out.append(issue(rule, f"type must hold codes of {codes.SERVICE_TYPE}", "HealthcareService.type"))
    out.extend(directory.capacity_issues(body))
    out.extend(directory.intake_issues(body))
    for i, elig in enumerate(body.get("eligibility") or []):
        for code in codes.codes_in(elig.get("code"), codes.ELIGIBILITY):
            if code not in codes.hierarchy("gbv-eligibility"):
                out.append(issue(rule, f"eligibility code '{code}' is not in {codes.ELIGIBILITY}",
                                 f"HealthcareService.eligibility[{i}].code"))
    return out


def accepts_referrals(body: dict) -> bool:
    """Active, and its capacity is not `closed` (a waitlist takes referrals onto the list)."""
    return body.get("active", True) is not False and directory.capacity_status(body) in directory.OPEN_CAPACITY


_CHECKS = {"ServiceRequest": service_request, "Task": task, "Patient": patient, "Consent": consent,
           "HealthcareService": healthcare_service}


def issues_for(resource_type: str, body: dict) -> list[Issue]:
    """The profile's own checks of one resource, without what needs stored data (parties, references, state)."""
    check = _CHECKS.get(resource_type)
    return check(body) if check else []
