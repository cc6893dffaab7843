"""The survivor's consent: what a referral discloses, whom her Consent permits, and what withdrawal takes back.

Representation (documented in `conformance/StructureDefinition-gbv-referral-consent.json`): an active Consent for
the Patient whose `provision.actor` names each permitted recipient (role v3-ParticipationType|IRCP, a reference to an
Organization: R4 allows no HealthcareService there; it covers the organisation's services) and whose
`provision.code` lists the gbv-data-category codes she agreed to share with them. Nested provisions may permit or deny categories for particular recipients.
"""
from __future__ import annotations

from datetime import datetime, timezone

from exchange.need_to_know.organisations import organisations_of
from exchange.fhir.references import references_in, split_reference
from exchange.fhir.dates import parse_fhir_date
from exchange.referral import codes, consent_rules, profile
from exchange.referral.refusal import issue, raise_all, refuse
from exchange.store.repository import Repository


def _targets(body: dict, element: str, resource_type: str) -> list[str]:
    out = []
    for ref in references_in(body.get(element)):
        split = split_reference(ref)
        if split and split[0] == resource_type:
            out.append(split[1])
    return out


def subject_id(body: dict, element: str = "subject") -> str | None:
    found = _targets(body, element, "Patient")
    return found[0] if found else None


async def categories_sent(repo: Repository, request: dict, patient: dict | None = None) -> set[str]:
    """The data categories a referral discloses: the Patient's fields, the incident, the supporting documents."""
    if patient is None:
        pid = subject_id(request)
        stored = await repo.read("Patient", pid) if pid else None
        patient = stored.resource if stored and not stored.deleted else {}
    found = profile.patient_categories(patient)
    if request.get("reasonCode") or request.get("reasonReference") or any(
            isinstance(e, dict) and e.get("url") == codes.EXT_INCIDENT_DATE for e in request.get("extension") or []):
        found.add(codes.INCIDENT)
    for i, doc_id in enumerate(_targets(request, "supportingInfo", "DocumentReference")):
        doc = await repo.read("DocumentReference", doc_id)
        doc_categories = set(codes.codings_in(doc.resource.get("category"), codes.DATA_CATEGORY)) \
            if doc and not doc.deleted else set()
        if not doc_categories:
            refuse("document-category", f"DocumentReference/{doc_id} needs a category from {codes.DATA_CATEGORY} "
                                        "(what kind of data it discloses)", "ServiceRequest.supportingInfo")
        found |= doc_categories
    return found


def _in_force(consent: dict, now: datetime) -> bool:
    if consent.get("status") != "active":
        return False
    period = (consent.get("provision") or {}).get("period") or {}
    try:
        if period.get("start") and parse_fhir_date(period["start"])[0] > now:
            return False
        if period.get("end") and parse_fhir_date(period["end"])[1] <= now:
            return False
    except ValueError:
        return False
    return True


async def permitted_categories(repo: Repository, consent: dict, organization_id: str,
                               now: datetime | None = None) -> set[str]:
    """The categories `consent` lets `organization_id` receive (empty when it is not in force or names others)."""
    if not _in_force(consent, now or datetime.now(timezone.utc)):
        return set()
    permits: set[str] = set()
    denies: set[str] = set()
    for kind, actors, categories in profile.recipient_provisions(consent):
        if organization_id in await organisations_of(repo, actors):
            (denies if kind == "deny" else permits).update(categories)
    return permits - denies


async def referral_consents(repo: Repository, request: dict) -> list[dict]:
    """The Consents a ServiceRequest names in supportingInfo that are about its own subject."""
    patient = subject_id(request)
    out = []
    for consent_id in _targets(request, "supportingInfo", "Consent"):
        stored = await repo.read("Consent", consent_id)
        if stored and not stored.deleted and subject_id(stored.resource, "patient") == patient:
            out.append(stored.resource)
    return out


async def same_patient(repo: Repository, request: dict) -> None:
    """422 unless every Consent and document in supportingInfo is about the referral's own Patient (one about
    another survivor would be shared with the receiver, and would never withdraw anything for her)."""
    patient = subject_id(request)
    for i, item in enumerate(request.get("supportingInfo") or []):
        split = split_reference(item.get("reference") or "") if isinstance(item, dict) else None
        if not split or split[0] not in ("Consent", "DocumentReference"):
            continue
        stored = await repo.read(*split)
        if stored is None or stored.deleted:
            continue  # an unknown target is refused as referral-reference
        element = "patient" if split[0] == "Consent" else "subject"
        if subject_id(stored.resource, element) != patient:
            rule = "consent-patient" if split[0] == "Consent" else "document-patient"
            refuse(rule, f"the {split[0]} is about another Patient than the referral's subject",
                   f"ServiceRequest.supportingInfo[{i}]")


async def uncovered(repo: Repository, request: dict, organization_id: str, needed: set[str],
                    consents: list[dict] | None = None) -> set[str]:
    """The categories of `needed` that no Consent of the referral (of `consents`, when given) lets
    `organization_id` receive."""
    best: set[str] | None = None
    for consent in await referral_consents(repo, request) if consents is None else consents:
        missing = needed - await permitted_categories(repo, consent, organization_id)
        if best is None or len(missing) < len(best):
            best = missing
    return needed if best is None else best


async def receivers(repo: Repository, request: dict) -> set[str]:
    """The organisations a referral discloses to: its performers, other than the requester itself."""
    return (await organisations_of(repo, references_in(request.get("performer")))
            - await organisations_of(repo, references_in(request.get("requester"))))


async def _patient(repo: Repository, request: dict, patient: dict | None) -> dict:
    if patient is not None:
        return patient
    pid = subject_id(request)
    stored = await repo.read("Patient", pid) if pid else None
    return stored.resource if stored and not stored.deleted else {}


async def valid_for_her(repo: Repository, request: dict, consents: list[dict], patient: dict | None,
                        deployment: consent_rules.Deployment, expression: str, name_consent: bool = True
                        ) -> list[dict]:
    """The Consents that hold for her as she is: for a child, only a caregiver's or a best-interest one with her
    assent (`consent_rules.child_issues`); 422 consent-child when none does (naming the Consent and its element
    only when `name_consent`: the writer is party to the referral)."""
    her = await _patient(repo, request, patient)
    now = datetime.now(timezone.utc)
    found = [(c, consent_rules.child_issues(c, her, deployment, now)) for c in consents]
    valid = [c for c, issues in found if not issues]
    if consents and not valid:
        consent, issues = found[0]
        first = issues[0]
        where = f"Consent/{consent.get('id')} at {first.expression[0]}: " if name_consent else ""
        raise_all([issue(consent_rules.RULE_CHILD, where + first.diagnostics.split(": ", 1)[1], expression)])
    return valid


async def require_consent(repo: Repository, request: dict, patient: dict | None = None,
                          expression: str = "ServiceRequest.supportingInfo", only: set[str] | None = None,
                          name_receivers: bool = True, *, deployment: consent_rules.Deployment) -> None:
    """422 unless an active Consent of the referral names every receiver (of `only`, when given) for every category
    it discloses, and holds for her (a child's: `valid_for_her`); or the referral invokes the emergency exception
    within what the deployment allows. `name_receivers` False: the writer is not party to this referral, so the
    refusal names nobody."""
    needed = await categories_sent(repo, request, patient)
    if consent_rules.emergency_reason(request) is not None:
        raise_all(consent_rules.emergency_scope_issues(request, deployment, needed, expression))
        return
    consents = await referral_consents(repo, request)
    if not consents:
        refuse("consent-required", "supportingInfo names no Consent of the referral's Patient" if name_receivers
               else "not every organisation that holds her data has a Consent of hers", expression)
    consents = await valid_for_her(repo, request, consents, patient, deployment, expression, name_receivers)
    for org in sorted(await receivers(repo, request)):
        if only is not None and org not in only:
            continue
        missing = await uncovered(repo, request, org, needed, consents)
        who = f"Organization/{org}" if name_receivers else "every organisation that holds her data"
        if missing == needed:
            refuse("consent-required", f"no active Consent of the Patient names {who} as a permitted "
                                       "recipient (Consent.provision.actor, role IRCP)", expression)
        if missing:
            refuse("consent-coverage", f"the Consent does not let {who} receive: {', '.join(sorted(missing))}",
                   expression)
