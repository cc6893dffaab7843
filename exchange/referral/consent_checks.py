"""The cross-resource half of `consent_rules`: what a Consent or a referral points at, read from the store.

Two entry points for `exchange.referral.rules`: `consent_record` (a Consent is written: its form and worker exist and
the caller sees them, the form is about her, and a child's consent is a caregiver's or a best-interest one) and
`referral` (a ServiceRequest is written: the worker who invoked the emergency exception exists; family mediation
after intimate-partner violence has its safety assessment). The exception's scope and a child's consent at the time of
disclosure are checked with the rest of consent in `exchange.referral.consent.require_consent`.
"""
from __future__ import annotations

from datetime import datetime, timezone

from exchange.fhir.references import references_in, split_reference
from exchange.referral import consent_rules
from exchange.referral.consent import subject_id
from exchange.referral.refusal import raise_all, refuse
from exchange.kernel.change import Reads


def deployment(reads: Reads) -> consent_rules.Deployment:
    return consent_rules.Deployment.of(reads.exchange.settings)


async def _known_worker(reads: Reads, value: object, where: str, rule: str) -> None:
    ref = value.get("reference") if isinstance(value, dict) else None
    split = split_reference(ref) if isinstance(ref, str) else None
    if split is None:
        return  # an identifier of the organisation's staff (checked by consent_rules), nothing to look up
    found = await reads.repo.read(split[0], split[1], reads.access)
    if found is None or found.deleted:
        refuse(rule, f"{split[0]}/{split[1]} is not known", where)


async def consent_record(reads: Reads, body) -> None:  # noqa: ANN001
    """422 unless what a Consent points at exists, is visible to the writer and is about her, and unless it holds
    for a child (`consent_rules.child_issues`, with the Patient as stored)."""
    repo = reads.repo
    patient_id = subject_id(body, "patient")
    for i, ref in enumerate(references_in(body.get("sourceReference"))):
        split = split_reference(ref)
        if split is None or split[0] != "DocumentReference":
            continue
        found = await repo.read(split[0], split[1], reads.access)
        if found is None or found.deleted:
            refuse(consent_rules.RULE_OBTAINED, f"DocumentReference/{split[1]} is not known", "Consent.sourceReference")
        if subject_id(found.resource) != patient_id:
            refuse(consent_rules.RULE_OBTAINED, "the signed form is about another Patient than the Consent",
                   "Consent.sourceReference")
    found = consent_rules.extension(body, consent_rules.EXT_CONSENT_GIVEN)
    if found is not None:
        await _known_worker(reads, consent_rules.given(body).get("obtained-by"),
                            f"Consent.extension[{found[0]}].extension('obtained-by')", consent_rules.RULE_OBTAINED)
    patient = await repo.read("Patient", patient_id) if patient_id else None
    if patient is not None and not patient.deleted:
        raise_all(consent_rules.child_issues(body, patient.resource, deployment(reads), datetime.now(timezone.utc)))


async def referral(reads: Reads, body) -> None:  # noqa: ANN001
    """The worker behind an emergency exception exists; mediation after IPV has its safety assessment."""
    found = consent_rules.extension(body, consent_rules.EXT_EMERGENCY)
    if found is not None:
        await _known_worker(reads, consent_rules.emergency(body).get("decided-by"), f"ServiceRequest.extension[{found[0]}]"
                            ".extension('decided-by')", consent_rules.RULE_EMERGENCY)
    if not consent_rules.needs_safety_assessment(body):
        return
    documents = []
    for ref in references_in(body.get("supportingInfo")):
        split = split_reference(ref)
        if split and split[0] == "DocumentReference":
            stored = await reads.repo.read(*split)
            if stored is not None and not stored.deleted:
                documents.append(stored.resource)
    raise_all(consent_rules.mediation_issues(body, documents, datetime.now(timezone.utc)))
