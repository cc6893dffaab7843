"""The exchange's own canonical URLs and the code systems the referral rules check against.

The CodeSystems live as JSON in `conformance/` (served read-only by `exchange.referral.routes`); the rules
read the same files, so what is published is exactly what is enforced.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import orjson

BASE = "https://gbv-exchange.org/fhir"
SERVICE_TYPE = f"{BASE}/CodeSystem/gbv-service-type"
DATA_CATEGORY = f"{BASE}/CodeSystem/gbv-data-category"
ELIGIBILITY = f"{BASE}/CodeSystem/gbv-eligibility"
REFERRAL_CODES = f"{BASE}/CodeSystem/gbv-referral-codes"
REFERRAL_OUTCOME = f"{BASE}/CodeSystem/gbv-referral-outcome"  # decline/cancel/failure reasons, milestones

EXT_SAFE_CONTACT = f"{BASE}/StructureDefinition/safe-contact"
EXT_ACCEPTING = f"{BASE}/StructureDefinition/accepting-referrals"  # replaced by EXT_CAPACITY (refused now)
EXT_CAPACITY = f"{BASE}/StructureDefinition/capacity"
EXT_INTAKE = f"{BASE}/StructureDefinition/intake"
EXT_CONFIDENTIAL = f"{BASE}/StructureDefinition/confidential"
EXT_INTERPRETER = f"{BASE}/StructureDefinition/interpreter-needed"
EXT_SPECIFIC_NEEDS = f"{BASE}/StructureDefinition/specific-needs"
EXT_REOFFER_OF = f"{BASE}/StructureDefinition/reoffer-of"  # on a Task made by $reoffer: the Task it offers again
EXT_ACKNOWLEDGE_DUE = f"{BASE}/StructureDefinition/acknowledgement-due"  # on Task, set by the exchange
EXT_INCIDENT_DATE = f"{BASE}/StructureDefinition/incident-date"  # on ServiceRequest: when the incident happened
EXT_ESCALATION = f"{BASE}/StructureDefinition/escalation"  # on Task, set by the exchange: escalated, re-route

PROFILE_SERVICE_REQUEST = f"{BASE}/StructureDefinition/gbv-referral-servicerequest"
PROFILE_TASK = f"{BASE}/StructureDefinition/gbv-referral-task"
PROFILE_PATIENT = f"{BASE}/StructureDefinition/gbv-referral-patient"
PROFILE_CONSENT = f"{BASE}/StructureDefinition/gbv-referral-consent"
PROFILE_SERVICE = f"{BASE}/StructureDefinition/gbv-healthcareservice"

TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
RECIPIENT_ROLE = "IRCP"  # information recipient
# Consent.policyRule of a referral Consent (R4 ppc-1 needs policy or policyRule): she opted in to this sharing.
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OPT_IN = "OPTIN"

# Codes of gbv-referral-codes.
CONTACT_PROHIBITED = "contacting-subject-prohibited"
RESULTING_ACTIVITY = "resulting-activity"
OVERDUE = "overdue"
CONSENT_WITHDRAWN = "consent-withdrawn"

# Data categories (gbv-data-category): what a referral discloses, and what a Consent must cover.
CORE = "referral"  # case code, age, sex, language, needs, services requested, safe-contact choices
IDENTITY = "identity"  # name, full date of birth, identifiers other than the case code
# Identifier systems that name a person, not a case (matched as lower-case parts of Identifier.system)
IDENTITY_SYSTEM_MARKERS = ("unhcr", "progres", "passport", "national", "nid", "ssn", "citizen", "civil",
                           "2.16.840.1.113883.4.1")
CONTACT = "contact"  # telephone, address
INCIDENT = "incident"  # incident type, incident documents
HEALTH = "health"  # medical information


def conformance_dir() -> Path:
    """`conformance/` at the root of the source tree (next to the `exchange` package)."""
    return Path(__file__).resolve().parents[2] / "conformance"


@lru_cache(maxsize=None)
def load(kind: str, resource_id: str) -> dict:
    """A conformance resource by type and id, e.g. ("CodeSystem", "gbv-service-type")."""
    return orjson.loads((conformance_dir() / f"{kind}-{resource_id}.json").read_bytes())


def _walk(concepts: Iterable[dict], parent: str | None) -> Iterator[tuple[str, str | None]]:
    for concept in concepts:
        yield concept["code"], parent
        yield from _walk(concept.get("concept") or [], concept["code"])


@lru_cache(maxsize=None)
def hierarchy(code_system_id: str) -> dict[str, str | None]:
    """{code: parent code or None} of one of our CodeSystems."""
    return dict(_walk(load("CodeSystem", code_system_id).get("concept") or [], None))


@lru_cache(maxsize=None)
def expansion(value_set_id: str) -> tuple[tuple[str, str], ...]:
    """The (system, code) pairs of one of our ValueSets, in its order: its compose.include, each a listed set of
    concepts or a whole CodeSystem of ours (no filters, no excludes: ours use none)."""
    out: list[tuple[str, str]] = []
    for include in load("ValueSet", value_set_id)["compose"]["include"]:
        system = include["system"]
        listed = [c["code"] for c in include.get("concept") or []]
        out.extend((system, code) for code in listed or hierarchy(system.rsplit("/", 1)[1]))
    return tuple(out)


@lru_cache(maxsize=None)
def value_set(value_set_id: str) -> frozenset[tuple[str, str]]:
    return frozenset(expansion(value_set_id))


def display(system: str, code: str, language: str = "en") -> str | None:
    """The name of a code of one of our CodeSystems in `language` (its designation; the English display when it
    has none); None when it is not one of ours."""
    if not system.startswith(f"{BASE}/CodeSystem/"):
        return None
    code_system_id = system.rsplit("/", 1)[1]
    if not (conformance_dir() / f"CodeSystem-{code_system_id}.json").is_file():
        return None
    names = _names(code_system_id).get(code) or {}
    return names.get(language) or names.get("en")


@lru_cache(maxsize=None)
def _names(code_system_id: str) -> dict[str, dict[str, str]]:
    """{code: {language: name}} of one of our CodeSystems ("en": the display)."""
    out: dict[str, dict[str, str]] = {}

    def walk(concepts: Iterable[dict]) -> None:
        for concept in concepts:
            names = {d["language"]: d["value"] for d in concept.get("designation") or [] if d.get("language")}
            if concept.get("display"):
                names["en"] = concept["display"]
            out[concept["code"]] = names
            walk(concept.get("concept") or [])
    walk(load("CodeSystem", code_system_id).get("concept") or [])
    return out


def service_types() -> dict[str, str | None]:
    return hierarchy("gbv-service-type")


def is_within(code: str, ancestor: str) -> bool:
    """`code` is `ancestor` or one of its descendants in the service-type hierarchy."""
    tree = service_types()
    while code is not None:
        if code == ancestor:
            return True
        code = tree.get(code)
    return False


def codes_in(concept: dict | None, system: str) -> list[str]:
    """The codes of `system` in a CodeableConcept."""
    if not isinstance(concept, dict):
        return []
    return [c["code"] for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("system") == system
            and isinstance(c.get("code"), str)]


def codings_in(concepts: Iterable[dict] | None, system: str) -> list[str]:
    out: list[str] = []
    for concept in concepts or []:
        out.extend(codes_in(concept, system))
    return out
