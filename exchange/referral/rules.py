"""The referral workflow as write rules (`exchange.kernel.change`): every create, update and delete of a referral passes here.

`ReferralRules.check` refuses (422/409/428, nothing stored) what breaks a profile, the Task state machine, the
consent rules or the directory. `WithdrawalRule` follows a write with the exchange's own changes: it applies consent
withdrawal (`withdrawal.enforce`) only when an element it depends on changed (`WITHDRAWAL_INPUTS`). It is
registered after the need-to-know rule (`exchange.need_to_know.rules.NeedToKnowRule`, which narrows a claimed or
changed referral to its current parties), so withdrawal sees the narrowed referral.

The exchange itself (system context: CLI, store tests, the withdrawal cascade, the overdue sweep) is not held to
`check`: it may do anything. Partners always are; the demo and the conformance examples are written as partners, so
they prove the rules. The follow-ups run for everyone, so a withdrawal always takes effect.
"""
from __future__ import annotations

from exchange.fhir.references import references_in, split_reference
from exchange.need_to_know.organisations import organisations_in
from exchange.referral import (authority, consent, consent_checks, emergency, profile, routing, task_rules,
                               withdrawal)
from exchange.referral.refusal import raise_all, refuse
from exchange.kernel.change import Change, FollowUp, Reads
from exchange.store.values import StoredResource

CONSENT_ENDED = frozenset({"inactive", "rejected", "entered-in-error"})
REQUEST_OPEN = frozenset({"draft", "active", "on-hold"})
# ServiceRequest elements whose change shares more of her data, or with someone new
DISCLOSING = ("performer", "subject", "supportingInfo", "reasonCode", "reasonReference")
# the elements consent coverage depends on: who receives (and through which request), what is sent, which Consents
# (a Consent: any change of it)
WITHDRAWAL_INPUTS = {"Task": ("owner", "focus", "for"), "ServiceRequest": ("requester", *DISCLOSING), "Consent": ()}


async def _visible(reads: Reads, body, element: str, types: tuple[str, ...], where: str) -> None:  # noqa: ANN001
    """What a referral points at must be visible to the caller (else the write would share what it cannot see)."""
    for ref in references_in(body.get(element)):
        split = split_reference(ref)
        if split and split[0] in types:
            found = await reads.repo.read(split[0], split[1], reads.access)
            if found is None or found.deleted:
                refuse("referral-reference", f"{split[0]}/{split[1]} is not known", where)


def _frozen(current: StoredResource | None, body, elements: tuple[str, ...], rule: str) -> None:  # noqa: ANN001
    if current is None:
        return
    old = current.resource
    for element in elements:
        if old.get(element) != body.get(element):
            refuse(rule, f"{current.resource_type}.{element} never changes after creation",
                   f"{current.resource_type}.{element}")


class ReferralRules:
    async def check(self, change: Change, reads: Reads) -> None:
        if change.who.is_system:
            return
        if change.deleted:  # who may delete, and whether anything still needs it: `authority_rule`
            return
        check = getattr(self, f"_{change.resource_type}", None)
        if check is not None:
            await check(change, reads, change.after, change.current)

    async def _ServiceRequest(self, change: Change, reads: Reads, body, current: StoredResource | None
                  ) -> None:  # noqa: N802, ANN001
        raise_all(profile.service_request(body))
        if not change.who.is_system:  # who may write it at all is `authority`'s (403)
            await _visible(reads, body, "subject", ("Patient",), "ServiceRequest.subject")
            await _visible(reads, body, "supportingInfo", ("Consent", "DocumentReference"),
                           "ServiceRequest.supportingInfo")
        _frozen(current, body, authority.TABLE["ServiceRequest"].frozen, "referral-frozen-element")
        if current is None and body.get("status") not in REQUEST_OPEN:
            refuse("referral-created-closed", f"a referral is created {', '.join(sorted(REQUEST_OPEN))}: one created "
                                              "closed would share her data with no consent or routing check",
                   "ServiceRequest.status")
        await consent.same_patient(reads.repo, body)
        await consent_checks.referral(reads, body)
        old = current.resource if current else {}
        if current is None or any(old.get(e) != body.get(e) for e in ("performer", "code")):
            await routing.check_performers(reads.repo, body)
        # whatever the status: a write that names another receiver or sends more data passes the consent check
        if body.get("status") in REQUEST_OPEN or any(old.get(e) != body.get(e) for e in DISCLOSING):
            await consent.require_consent(reads.repo, body, deployment=consent_checks.deployment(reads))

    async def _Task(self, change: Change, reads: Reads, body, current: StoredResource | None
                  ) -> None:  # noqa: N802, ANN001
        if current is None:  # a new Task shares her referral with its owner: her consent must cover it
            raise_all(profile.task(body))
            request = await task_rules.check_create(reads, body)
            await consent.require_consent(reads.repo, request.resource, expression="Task.focus",
                                          deployment=consent_checks.deployment(reads))
        else:  # the state machine first: a frozen element changed says more than the profile would
            await task_rules.check_update(change, reads)
            raise_all(profile.task(body))

    async def _Patient(self, change: Change, reads: Reads, body, current: StoredResource | None
                  ) -> None:  # noqa: N802, ANN001
        raise_all(profile.patient(body))
        if current is None:
            return
        repo = reads.repo
        ids = await repo.referring_ids("ServiceRequest", "patient", [("Patient", current.id)])
        for request in await repo.read_many([("ServiceRequest", i) for i in ids]):
            holders = await repo.parties("ServiceRequest", request.id)  # whatever its status: who still holds her
            if request.resource.get("status") not in REQUEST_OPEN and not await consent.receivers(
                    repo, request.resource) & holders:
                continue
            await consent.require_consent(repo, request.resource, patient=body, expression="Patient", only=holders,
                                          name_receivers=change.who.organization_id in holders,
                                          deployment=consent_checks.deployment(reads))

    async def _Consent(self, change: Change, reads: Reads, body, current: StoredResource | None
                  ) -> None:  # noqa: N802, ANN001
        raise_all(profile.consent(body))
        if not change.who.is_system:
            # who changes it: authority
            if change.who.organization_id not in await organisations_in(reads.repo, body.get("organization")):
                refuse("consent-custodian", "a referral Consent is recorded and changed by the organisation that "
                                            "holds it (Consent.organization)", "Consent.organization")
            await _visible(reads, body, "patient", ("Patient",), "Consent.patient")
            await consent_checks.consent_record(reads, body)
        _frozen(current, body, authority.TABLE["Consent"].frozen, "consent-frozen-element")
        if current is not None and current.resource.get("status") in CONSENT_ENDED and body.get("status") == "active":
            refuse("consent-reactivation", "a withdrawn or ended Consent is not reactivated: record a new Consent",
                   "Consent.status", conflict=True)

    async def _DocumentReference(self, change: Change, reads: Reads, body, current: StoredResource | None
                  ) -> None:  # noqa: N802, ANN001
        await _visible(reads, body, "subject", ("Patient",), "DocumentReference.subject")
        _frozen(current, body, authority.TABLE["DocumentReference"].frozen, "document-frozen-element")

    async def _Procedure(self, change: Change, reads: Reads, body, current: StoredResource | None
                  ) -> None:  # noqa: N802, ANN001
        await _visible(reads, body, "subject", ("Patient",), "Procedure.subject")
        _frozen(current, body, authority.TABLE["Procedure"].frozen, "procedure-frozen-element")

    async def _HealthcareService(self, change: Change, reads: Reads, body, current: StoredResource | None
                  ) -> None:  # noqa: N802, ANN001
        raise_all(profile.healthcare_service(body))



class EmergencyRule:
    """A ServiceRequest that invokes the emergency exception leaves its own AuditEvent (`emergency`)."""

    async def follow(self, change: Change, reads: Reads) -> list[FollowUp]:
        if change.resource_type != "ServiceRequest" or change.deleted:
            return []
        return emergency.follow_ups(change.stored, change.current)


class WithdrawalRule:
    """After a write that can change what her Consents cover: the receivers they no longer cover lose her data."""

    async def follow(self, change: Change, reads: Reads) -> list[FollowUp]:
        inputs = WITHDRAWAL_INPUTS.get(change.resource_type)
        if inputs is None or change.deleted:
            return []
        if change.resource_type != "Task" and change.created:
            return []  # a new request or Consent is checked on the way in; it withdraws nothing
        if inputs and not change.changed(*inputs):
            return []  # who receives what is unchanged: consent coverage cannot have changed
        element = {"Task": "for", "ServiceRequest": "subject", "Consent": "patient"}[change.resource_type]
        patient = consent.subject_id(change.after, element)
        return await withdrawal.enforce(reads.repo, patient) if patient else []
