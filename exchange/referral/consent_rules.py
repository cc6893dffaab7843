"""Consent as it is really given: a caregiver's consent for a child, how and by whom consent was obtained, the
governed emergency exception, and the safety assessment before family mediation. Rules as data and plain functions.

Representation (documented in `conformance/StructureDefinition-consent-given.json`, `-emergency-exception.json`):
- `Consent.extension(consent-given)`: `method` (gbv-consent-method), `obtained-by` (the worker: a Practitioner or
  PractitionerRole reference, or a logical reference by the organisation's staff identifier), `attested` (when the
  worker attested a verbal consent), `capacity` (gbv-consent-capacity) and the child's `assent` (gbv-child-assent).
  A written consent's signed form is a DocumentReference in `Consent.sourceReference`. For a child the caregiver is
  `Consent.performer`, a contained RelatedPerson that carries only its coded relationship and the Patient.
- `ServiceRequest.extension(emergency-exception)`: `reason` (gbv-emergency-reason) and `decided-by` (the worker); such
  a referral lists no Consent, goes only to the deployment's allowed service types and discloses only
  `EMERGENCY_DISCLOSES`.
- Family mediation (`ServiceRequest.code` within family-mediation) with `reasonCode` gbv-incident|
  intimate-partner-violence needs a DocumentReference of type gbv-incident|safety-assessment in supportingInfo, current
  and dated no later than the referral.

Every function here returns the issues it finds (empty when the rule holds); `exchange.referral.consent` and
`exchange.referral.rules` raise them. Messages name elements and codes, never a value sent.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Iterable

from exchange.errors import Issue
from exchange.fhir.dates import parse_fhir_date
from exchange.fhir.references import references_in, split_reference
from exchange.referral import codes
from exchange.referral.refusal import issue

CONSENT_CODES = f"{codes.BASE}/CodeSystem/gbv-consent"
INCIDENT_CODES = f"{codes.BASE}/CodeSystem/gbv-incident"
EXT_CONSENT_GIVEN = f"{codes.BASE}/StructureDefinition/consent-given"
EXT_EMERGENCY = f"{codes.BASE}/StructureDefinition/emergency-exception"
ROLE_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"  # RelatedPerson.relationship (MTH, GUARD ...)

RULE_OBTAINED = "consent-obtained"
RULE_CHILD = "consent-child"
RULE_EMERGENCY = "emergency-exception"
RULE_MEDIATION = "mediation-safety-assessment"

# The parts of the two complex extensions and the value each one takes.
GIVEN_PARTS = {"method": "valueCodeableConcept", "obtained-by": "valueReference", "attested": "valueDateTime",
               "capacity": "valueCodeableConcept", "assent": "valueCodeableConcept"}
GIVEN_REQUIRED = ("method", "obtained-by")
EMERGENCY_PARTS = {"reason": "valueCodeableConcept", "decided-by": "valueReference"}
EMERGENCY_REQUIRED = ("reason", "decided-by")
# Which coded part is bound to which published ValueSet (what is published is what is enforced).
BINDINGS = {"method": "gbv-consent-method", "capacity": "gbv-consent-capacity", "assent": "gbv-child-assent",
            "reason": "gbv-emergency-reason"}
WORKER_TYPES = ("Practitioner", "PractitionerRole")

# How a consent was obtained -> what must record it: the worker's attestation, or the signed form.
METHOD_NEEDS = {"verbal-in-person": "attested", "verbal-phone": "attested", "written": "form"}

# For a child (under the deployment's age of consent): who may consent, and which assent each capacity allows.
CAREGIVER_CAPACITIES = frozenset({"parent", "legal-guardian", "caregiver"})
BEST_INTEREST = "best-interest-determination"
ASSENT_ALLOWS = {"assent-given": CAREGIVER_CAPACITIES | {BEST_INTEREST},
                 "assent-not-possible": CAREGIVER_CAPACITIES | {BEST_INTEREST},
                 "assent-declined": frozenset({BEST_INTEREST})}
# A contained caregiver carries who she is to the child and nothing that identifies her (minimum necessary).
CAREGIVER_ELEMENTS = frozenset({"resourceType", "id", "patient", "relationship", "active"})

# What a referral under the emergency exception may disclose: enough to save her life, never the incident.
EMERGENCY_DISCLOSES = frozenset({codes.CORE, codes.IDENTITY, codes.CONTACT, codes.HEALTH})

MEDIATION = "family-mediation"
IPV = "intimate-partner-violence"
SAFETY_ASSESSMENT = "safety-assessment"


@dataclass(frozen=True)
class Deployment:
    """The deployment's settings these rules read (`exchange.settings.Settings`)."""
    age_of_consent: int = 18
    emergency_service_types: tuple[str, ...] = ("medical-care", "police-protection")

    @classmethod
    def of(cls, settings) -> "Deployment":  # noqa: ANN001 - exchange.settings.Settings
        return cls(settings.referral_age_of_consent, tuple(settings.referral_emergency_service_types))


@lru_cache(maxsize=None)
def value_set(value_set_id: str) -> frozenset[str]:
    """The codes a published ValueSet (of enumerated concepts) holds."""
    body = codes.load("ValueSet", value_set_id)
    return frozenset(c["code"] for inc in body["compose"]["include"] for c in inc.get("concept") or [])


def _parts(extension: dict, allowed: dict[str, str], where: str, rule: str) -> tuple[dict[str, object], list[Issue]]:
    """{part: value} of a complex extension, and the issues of unknown, repeated or mistyped parts."""
    found: dict[str, object] = {}
    out: list[Issue] = []
    for i, part in enumerate(extension.get("extension") or []):
        at = f"{where}.extension[{i}]"
        name = part.get("url") if isinstance(part, dict) else None
        key = allowed.get(name) if isinstance(name, str) else None
        if key is None:
            out.append(issue(rule, f"unknown part; allowed: {', '.join(allowed)}", at))
        elif name in found:
            out.append(issue(rule, f"part '{name}' is given more than once", at))
        elif key not in part:
            out.append(issue(rule, f"part '{name}' needs {key}", at))
        else:
            found[name] = part[key]
    if any(k.startswith("value") for k in extension):
        out.append(issue(rule, "a complex extension: no value[x]", where))
    return found, out


def _coded(parts: dict, name: str, system: str) -> str | None:
    found = codes.codes_in(parts.get(name), system)  # type: ignore[arg-type]
    return found[0] if found else None


def _code_issues(parts: dict, system: str, where: str, rule: str) -> list[Issue]:
    out = []
    for name, value_set_id in BINDINGS.items():
        if name in parts and _coded(parts, name, system) not in value_set(value_set_id):
            out.append(issue(rule, f"{name} must hold a code of {codes.BASE}/ValueSet/{value_set_id}",
                             f"{where}.extension('{name}')"))
    return out


def _worker_issues(value: object, where: str, rule: str) -> list[Issue]:
    """A worker: a literal reference to a Practitioner or PractitionerRole, or an identifier the organisation
    gives its staff (a logical reference, type Practitioner or PractitionerRole)."""
    if not isinstance(value, dict):
        return [issue(rule, "must be a Reference", where)]
    ref = value.get("reference")
    if isinstance(ref, str):
        split = split_reference(ref)
        if split is None or split[0] not in WORKER_TYPES:
            return [issue(rule, "must reference a Practitioner or PractitionerRole", where)]
        return []
    identifier = value.get("identifier")
    if isinstance(identifier, dict) and identifier.get("system") and identifier.get("value") \
            and value.get("type") in WORKER_TYPES:
        return []
    return [issue(rule, "must reference the worker: a Practitioner or PractitionerRole, or type (Practitioner or "
                        "PractitionerRole) with the organisation's staff identifier (system and value)", where)]


def extension(body: dict, url: str) -> tuple[int, dict] | None:
    for i, ext in enumerate(body.get("extension") or []):
        if isinstance(ext, dict) and ext.get("url") == url:
            return i, ext
    return None


def _all(body: dict, url: str) -> list[int]:
    return [i for i, e in enumerate(body.get("extension") or []) if isinstance(e, dict) and e.get("url") == url]


# --- How consent was given (the Consent on its own) ----------------------------------------------------------------

def given(consent: dict) -> dict[str, object]:
    """The parts of the Consent's consent-given extension ({} when it has none)."""
    found = extension(consent, EXT_CONSENT_GIVEN)
    return _parts(found[1], GIVEN_PARTS, "", RULE_OBTAINED)[0] if found else {}


def capacity(consent: dict) -> str | None:
    return _coded(given(consent), "capacity", CONSENT_CODES)


def caregiver(consent: dict) -> dict | None:
    """The contained RelatedPerson Consent.performer names (the caregiver who consented), if any."""
    contained = {c.get("id"): c for c in consent.get("contained") or [] if isinstance(c, dict)}
    for ref in references_in(consent.get("performer")):
        found = contained.get(ref[1:]) if ref.startswith("#") else None
        if found is not None and found.get("resourceType") == "RelatedPerson":
            return found
    return None


def given_issues(consent: dict) -> list[Issue]:
    """The consent-given extension, when present: known parts and codes, the worker, and what its method needs
    (rule consent-obtained); a contained caregiver holds only its relationship (rule minimum-necessary)."""
    out: list[Issue] = []
    indices = _all(consent, EXT_CONSENT_GIVEN)
    if len(indices) > 1:
        out.append(issue(RULE_OBTAINED, "at most one consent-given extension", "Consent.extension"))
    for i, child in enumerate(consent.get("contained") or []):
        if isinstance(child, dict) and child.get("resourceType") == "RelatedPerson":
            for key in child:
                if key not in CAREGIVER_ELEMENTS:
                    out.append(issue("minimum-necessary", f"a caregiver is recorded by her relationship to the child "
                                                          f"only; RelatedPerson.{key} stays with the organisation",
                                     f"Consent.contained[{i}].{key}"))
            if not codes.codings_in(child.get("relationship"), ROLE_CODE_SYSTEM):
                out.append(issue(RULE_CHILD, f"the caregiver's relationship must be coded ({ROLE_CODE_SYSTEM}, e.g. "
                                             "MTH, FTH, GRMTH, AUNT, GUARD)", f"Consent.contained[{i}].relationship"))
    if not indices:
        return out
    where = f"Consent.extension[{indices[0]}]"
    parts, found = _parts(consent["extension"][indices[0]], GIVEN_PARTS, where, RULE_OBTAINED)
    out += found + _code_issues(parts, CONSENT_CODES, where, RULE_OBTAINED)
    for name in GIVEN_REQUIRED:
        if name not in parts:
            out.append(issue(RULE_OBTAINED, f"part '{name}' is required", where))
    if "obtained-by" in parts:
        out += _worker_issues(parts["obtained-by"], f"{where}.extension('obtained-by')", RULE_OBTAINED)
    need = METHOD_NEEDS.get(_coded(parts, "method", CONSENT_CODES) or "")
    if need == "attested" and "attested" not in parts:
        out.append(issue(RULE_OBTAINED, "a verbal consent needs the worker's attestation (part 'attested': when "
                                        "the worker in obtained-by attested it)", f"{where}.extension('attested')"))
    if need == "form" and not _typed(consent.get("sourceReference"), ("DocumentReference",)):
        out.append(issue(RULE_OBTAINED, "a written consent needs the signed form as a DocumentReference in "
                                        "sourceReference", "Consent.sourceReference"))
    return out


def _typed(value: object, types: tuple[str, ...]) -> bool:
    refs = list(references_in(value))
    return bool(refs) and all((split_reference(r) or ("",))[0] in types for r in refs)


# --- A child's consent (the Consent with its Patient) --------------------------------------------------------------

def age_range(birth_date: object, at: datetime) -> tuple[int, int] | None:
    """(youngest, oldest) age in whole years at `at` that a FHIR birthDate (YYYY, YYYY-MM or YYYY-MM-DD) allows."""
    if not isinstance(birth_date, str):
        return None
    try:
        first, after = parse_fhir_date(birth_date)
    except ValueError:
        return None

    def years(born: datetime) -> int:
        return at.year - born.year - ((at.month, at.day) < (born.month, born.day))

    return years(after - timedelta(days=1)), years(first)


def is_child(patient: dict, at: datetime, age_of_consent: int) -> bool:
    """Under the age of consent, when she consented. When only the year or month of birth is known she is taken as a
    child if she may not yet have reached it (the presumption of minority of child-protection guidance)."""
    ages = age_range(patient.get("birthDate"), at)
    return ages is not None and ages[0] < age_of_consent


def consented_at(consent: dict, now: datetime) -> datetime:
    try:
        return parse_fhir_date(consent["dateTime"])[0]
    except (KeyError, TypeError, ValueError):
        return now


def child_issues(consent: dict, patient: dict, deployment: Deployment, now: datetime,
                 where: str = "Consent") -> list[Issue]:
    """For a Patient under the age of consent: a caregiver's consent (capacity parent, legal-guardian or caregiver,
    Consent.performer the contained caregiver) or a best-interest determination, and the child's assent recorded
    (assent-declined only with a best-interest determination). Rule consent-child; empty for an adult."""
    if consent.get("status") != "active" or not is_child(patient, consented_at(consent, now),
                                                         deployment.age_of_consent):
        return []
    given_at = f"{where}.extension('{EXT_CONSENT_GIVEN}')"
    parts = given(consent)
    held = _coded(parts, "capacity", CONSENT_CODES)
    if held not in CAREGIVER_CAPACITIES | {BEST_INTEREST}:
        return [issue(RULE_CHILD, f"she is under the age of consent ({deployment.age_of_consent}): a caregiver "
                                  f"(capacity {', '.join(sorted(CAREGIVER_CAPACITIES))}) consents for her, or a "
                                  f"{BEST_INTEREST} is recorded", f"{given_at}.extension('capacity')")]
    out = []
    if held in CAREGIVER_CAPACITIES and caregiver(consent) is None:
        out.append(issue(RULE_CHILD, "Consent.performer must name the caregiver who consented (a contained "
                                     "RelatedPerson with a coded relationship)", f"{where}.performer"))
    assent = _coded(parts, "assent", CONSENT_CODES)
    if assent is None:
        out.append(issue(RULE_CHILD, "the child's assent must be recorded (assent-given, assent-declined or "
                                     "assent-not-possible)", f"{given_at}.extension('assent')"))
    elif held not in ASSENT_ALLOWS.get(assent, frozenset()):
        out.append(issue(RULE_CHILD, f"the child did not assent: only a {BEST_INTEREST} may refer her",
                         f"{given_at}.extension('assent')"))
    return out


# --- The emergency exception (the ServiceRequest) ------------------------------------------------------------------

def emergency_reason(request: dict) -> str | None:
    """The coded reason of the referral's emergency exception (None when it does not invoke one)."""
    found = extension(request, EXT_EMERGENCY)
    if found is None:
        return None
    return _coded(emergency(request), "reason", CONSENT_CODES) or ""


def emergency(request: dict) -> dict[str, object]:
    """The parts of the ServiceRequest's emergency-exception extension ({} when it has none)."""
    found = extension(request, EXT_EMERGENCY)
    return _parts(found[1], EMERGENCY_PARTS, "", RULE_EMERGENCY)[0] if found else {}


def emergency_issues(request: dict) -> list[Issue]:
    """The emergency-exception extension on its own: its parts, a coded reason, the worker; and no Consent beside it
    (a referral she consented to is made under her consent)."""
    indices = _all(request, EXT_EMERGENCY)
    if not indices:
        return []
    where = f"ServiceRequest.extension[{indices[0]}]"
    out = [issue(RULE_EMERGENCY, "at most one emergency-exception extension", "ServiceRequest.extension")] \
        if len(indices) > 1 else []
    parts, found = _parts(request["extension"][indices[0]], EMERGENCY_PARTS, where, RULE_EMERGENCY)
    out += found + _code_issues(parts, CONSENT_CODES, where, RULE_EMERGENCY)
    for name in EMERGENCY_REQUIRED:
        if name not in parts:
            out.append(issue(RULE_EMERGENCY, f"part '{name}' is required", where))
    if "decided-by" in parts:
        out += _worker_issues(parts["decided-by"], f"{where}.extension('decided-by')", RULE_EMERGENCY)
    consents = [r for r in references_in(request.get("supportingInfo"))
                if (split_reference(r) or ("",))[0] == "Consent"]
    if consents:
        out.append(issue(RULE_EMERGENCY, "a referral that lists her Consent is made under it: leave out the "
                                         "emergency exception", "ServiceRequest.supportingInfo"))
    return out


def is_within(code: str, ancestors: Iterable[str]) -> bool:
    return any(codes.is_within(code, a) for a in ancestors)


def emergency_scope_issues(request: dict, deployment: Deployment, disclosed: set[str],
                           expression: str) -> list[Issue]:
    """Where the exception may send her data (the deployment's service types) and what it may disclose."""
    out = []
    allowed = deployment.emergency_service_types
    requested = codes.codes_in(request.get("code"), codes.SERVICE_TYPE)
    if not requested or not all(is_within(c, allowed) for c in requested):
        out.append(issue(RULE_EMERGENCY, f"the emergency exception refers only to {', '.join(allowed)} (and their "
                                         "descendants) in this deployment", "ServiceRequest.code"))
    beyond = disclosed - EMERGENCY_DISCLOSES
    if beyond:
        out.append(issue(RULE_EMERGENCY, f"without her consent a referral never discloses {', '.join(sorted(beyond))}"
                                         f"; it may disclose {', '.join(sorted(EMERGENCY_DISCLOSES))}", expression))
    return out


# --- Family mediation after intimate-partner violence --------------------------------------------------------------

def needs_safety_assessment(request: dict) -> bool:
    requested = codes.codes_in(request.get("code"), codes.SERVICE_TYPE)
    return any(codes.is_within(c, MEDIATION) for c in requested) and \
        IPV in codes.codings_in(request.get("reasonCode"), INCIDENT_CODES)


def is_safety_assessment(document: dict, before: datetime) -> bool:
    """A current DocumentReference of type safety-assessment, dated no later than `before`."""
    if document.get("status") != "current" or SAFETY_ASSESSMENT not in codes.codes_in(document.get("type"),
                                                                                         INCIDENT_CODES):
        return False
    try:
        return parse_fhir_date(document["date"])[0] <= before
    except (KeyError, TypeError, ValueError):
        return False


def mediation_issues(request: dict, documents: list[dict], now: datetime) -> list[Issue]:
    """Family mediation when the incident is intimate-partner violence: a recorded safety assessment first."""
    if not needs_safety_assessment(request):
        return []
    try:
        before = parse_fhir_date(request["authoredOn"])[1] if request.get("authoredOn") else now
    except ValueError:
        before = now
    if any(is_safety_assessment(d, min(before, now)) for d in documents):
        return []
    return [issue(RULE_MEDIATION, f"a referral to {MEDIATION} after {IPV} needs a recorded safety assessment first: "
                                  f"a current DocumentReference of type {INCIDENT_CODES}|{SAFETY_ASSESSMENT}, dated "
                                  "no later than the referral, in supportingInfo", "ServiceRequest.supportingInfo")]
