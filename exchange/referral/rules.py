"""The referral workflow as a WriteRule: every create, update and delete of a referral resource passes here.

before_write refuses (422/409/428, nothing stored) what breaks a profile, the Task state machine, the consent rules
or the directory; after_write narrows a claimed or changed referral to its current parties (`need_to_know`) and
applies consent withdrawal (`withdrawal.enforce`).

The exchange itself (system context: CLI, store tests, the withdrawal cascade, the overdue sweep) is not held to
before_write: it may do anything. Partners always are; the demo and the conformance examples are written as
partners, so they prove the rules. after_write runs for everyone, so a withdrawal always takes effect.
"""
from __future__ import annotations

from exchange.auth.access import organisations_of
from exchange.fhir.references import references_in, split_reference
from exchange.referral import (authority, consent, consent_checks, emergency, need_to_know, profile, routing,
                               task_rules, withdrawal)
from exchange.referral.refusal import raise_all, refuse
from exchange.store.repository import StoredResource
from exchange.unit import Unit

CONSENT_ENDED = frozenset({"inactive", "rejected", "entered-in-error"})
REQUEST_OPEN = frozenset({"draft", "active", "on-hold"})
# ServiceRequest elements whose change shares more of her data, or with someone new
DISCLOSING = ("performer", "subject", "supportingInfo", "reasonCode", "reasonReference")
WITHDRAWAL_INPUTS = ("owner", "focus", "for")  # the Task elements consent coverage depends on


async def _orgs(unit: Unit, body: dict, element: str) -> set[str]:
    return await organisations_of(unit.repo, references_in(body.get(element)))


async def _visible(unit: Unit, body: dict, element: str, types: tuple[str, ...], where: str) -> None:
    """What a referral points at must be visible to the caller (else the write would share what it cannot see)."""
    for ref in references_in(body.get(element)):
        split = split_reference(ref)
        if split and split[0] in types:
            found = await unit.repo.read(split[0], split[1], unit.access)
            if found is None or found.deleted:
                refuse("referral-reference", f"{split[0]}/{split[1]} is not known", where)


def _frozen(current: StoredResource | None, body: dict, elements: tuple[str, ...], rule: str) -> None:
    if current is None:
        return
    old = current.resource
    for element in elements:
        if old.get(element) != body.get(element):
            refuse(rule, f"{current.resource_type}.{element} never changes after creation",
                   f"{current.resource_type}.{element}")


class ReferralRules:
    async def before_write(self, unit: Unit, resource_type: str, body: dict, current: StoredResource | None,
                           method: str) -> None:
        if unit.ctx.is_system:
            return
        if method == "DELETE":  # who may delete, and whether anything still needs it: `authority_rule`
            return
        check = getattr(self, f"_{resource_type}", None)
        if check is not None:
            await check(unit, body, current)

    async def _ServiceRequest(self, unit: Unit, body: dict, current: StoredResource | None) -> None:  # noqa: N802
        raise_all(profile.service_request(body))
        if not unit.ctx.is_system:  # who may write it at all is `authority`'s (403)
            await _visible(unit, body, "subject", ("Patient",), "ServiceRequest.subject")
            await _visible(unit, body, "supportingInfo", ("Consent", "DocumentReference"),
                           "ServiceRequest.supportingInfo")
        _frozen(current, body, authority.TABLE["ServiceRequest"].frozen, "referral-frozen-element")
        if current is None and body.get("status") not in REQUEST_OPEN:
            refuse("referral-created-closed", f"a referral is created {', '.join(sorted(REQUEST_OPEN))}: one created "
                                              "closed would share her data with no consent or routing check",
                   "ServiceRequest.status")
        await consent.same_patient(unit.repo, body)
        await consent_checks.referral(unit, body)
        old = current.resource if current else {}
        if current is None or any(old.get(e) != body.get(e) for e in ("performer", "code")):
            await routing.check_performers(unit.repo, body)
        # whatever the status: a write that names another receiver or sends more data passes the consent check
        if body.get("status") in REQUEST_OPEN or any(old.get(e) != body.get(e) for e in DISCLOSING):
            await consent.require_consent(unit.repo, body, deployment=consent_checks.deployment(unit))

    async def _Task(self, unit: Unit, body: dict, current: StoredResource | None) -> None:  # noqa: N802
        if current is None:  # a new Task shares her referral with its owner: her consent must cover it
            raise_all(profile.task(body))
            request = await task_rules.check_create(unit, body)
            await consent.require_consent(unit.repo, request.resource, expression="Task.focus",
                                          deployment=consent_checks.deployment(unit))
        else:  # the state machine first: a frozen element changed says more than the profile would
            await task_rules.check_update(unit, body, current)
            raise_all(profile.task(body))

    async def _Patient(self, unit: Unit, body: dict, current: StoredResource | None) -> None:  # noqa: N802
        raise_all(profile.patient(body))
        if current is None:
            return
        repo = unit.repo
        ids = await repo.referring_ids("ServiceRequest", "subject", [("Patient", current.id)])
        for request in await repo.read_many([("ServiceRequest", i) for i in ids]):
            holders = await repo.parties("ServiceRequest", request.id)  # whatever its status: who still holds her
            if request.resource.get("status") not in REQUEST_OPEN and not await consent.receivers(
                    repo, request.resource) & holders:
                continue
            await consent.require_consent(repo, request.resource, patient=body, expression="Patient", only=holders,
                                          name_receivers=unit.ctx.organization_id in holders,
                                          deployment=consent_checks.deployment(unit))

    async def _Consent(self, unit: Unit, body: dict, current: StoredResource | None) -> None:  # noqa: N802
        raise_all(profile.consent(body))
        if not unit.ctx.is_system:
            if unit.ctx.organization_id not in await _orgs(unit, body, "organization"):  # who changes it: authority
                refuse("consent-custodian", "a referral Consent is recorded and changed by the organisation that "
                                            "holds it (Consent.organization)", "Consent.organization")
            await _visible(unit, body, "patient", ("Patient",), "Consent.patient")
            await consent_checks.consent_record(unit, body)
        _frozen(current, body, authority.TABLE["Consent"].frozen, "consent-frozen-element")
        if current is not None and current.resource.get("status") in CONSENT_ENDED and body.get("status") == "active":
            refuse("consent-reactivation", "a withdrawn or ended Consent is not reactivated: record a new Consent",
                   "Consent.status", conflict=True)

    async def _DocumentReference(self, unit: Unit, body: dict, current: StoredResource | None) -> None:  # noqa: N802
        await _visible(unit, body, "subject", ("Patient",), "DocumentReference.subject")
        _frozen(current, body, authority.TABLE["DocumentReference"].frozen, "document-frozen-element")

    async def _Procedure(self, unit: Unit, body: dict, current: StoredResource | None) -> None:  # noqa: N802
        await _visible(unit, body, "subject", ("Patient",), "Procedure.subject")
        _frozen(current, body, authority.TABLE["Procedure"].frozen, "procedure-frozen-element")

    async def _HealthcareService(self, unit: Unit, body: dict, current: StoredResource | None) -> None:  # noqa: N802
        raise_all(profile.healthcare_service(body))

    async def after_write(self, unit: Unit, stored: StoredResource, previous: StoredResource | None) -> None:
        body = stored.resource
        if stored.resource_type == "ServiceRequest":
            await emergency.after_write(unit, stored, previous)
        if stored.resource_type == "Task" and previous is not None:
            await need_to_know.narrow_on_claim(unit, stored, previous)
        elif stored.resource_type == "ServiceRequest" and previous is not None:
            await need_to_know.follow_performers(unit, stored.id)
        if stored.resource_type == "Task":  # (an open Task's parties include its request's performers: access)
            if previous is not None and all(previous.resource.get(e) == body.get(e) for e in WITHDRAWAL_INPUTS):
                return  # who receives what is unchanged: consent coverage cannot have changed
            patient = consent.subject_id(body, "for")
        elif stored.resource_type == "ServiceRequest" and previous is not None:
            patient = consent.subject_id(body)
        elif stored.resource_type == "Consent" and previous is not None:
            patient = consent.subject_id(body, "patient")
        else:
            return
        if patient:
            await withdrawal.enforce(unit, patient)
