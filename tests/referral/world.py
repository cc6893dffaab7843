"""Builders for referral tests: a small directory of organisations and services, and referral transactions."""
from __future__ import annotations

import base64
import uuid

from exchange.referral import codes
from exchange.referral.directory import capacity_extension

ORG_KINDS = {"hotline": "Amal Hotline", "shelter": "Safe Haven Shelter", "full": "Full Shelter",
             "clinic": "Al-Noor Clinic", "legal": "Justice Legal Aid", "other": "Unrelated NGO"}
BCP47 = "urn:ietf:bcp:47"
CODE_WORD = "blue-jasmine-7731"  # a safe-contact code word: must never reach an index, URL or message
SAFE_PHONE = "+962790001122"


def coding(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code}]}


def reason(code: str, text: str | None = None) -> dict:
    """A Task.statusReason (or businessStatus) coded from gbv-referral-outcome, with optional words."""
    return {**coding(codes.REFERRAL_OUTCOME, code), **({"text": text} if text else {})}


CAPACITY_UPDATED = "2026-11-20T08:00:00Z"


def service(org_id: str, types: list[str], accepting: bool = True, languages: tuple[str, ...] = ("ar",),
            eligibility: str | None = "women-only", name: str = "Service") -> dict:
    body = {"resourceType": "HealthcareService", "active": True, "name": name,
            "providedBy": {"reference": f"Organization/{org_id}"},
            "extension": [capacity_extension("available" if accepting else "closed", CAPACITY_UPDATED)],
            "type": [coding(codes.SERVICE_TYPE, t) for t in types],
            "communication": [coding(BCP47, lang) for lang in languages],
            "availableTime": [{"daysOfWeek": ["mon", "tue", "wed", "thu", "sun"], "availableStartTime": "08:00:00",
                               "availableEndTime": "16:00:00"}]}
    if eligibility:
        body["eligibility"] = [{"code": coding(codes.ELIGIBILITY, eligibility)}]
    return body


async def directory(system) -> dict[str, str]:  # noqa: ANN001
    """Organisations and their services; returns {key: id} with services as 'svc-<key>'."""
    ids: dict[str, str] = {}
    for key, name in ORG_KINDS.items():
        r = await system.post("/Organization", json={"resourceType": "Organization", "name": name})
        assert r.status_code == 201, r.text
        ids[key] = r.json()["id"]
    services = {
        "shelter": service(ids["shelter"], ["safety-shelter"], languages=("ar", "prs", "en"), name="Shelter"),
        "full": service(ids["full"], ["safety-shelter"], accepting=False, languages=("prs",), name="Full shelter"),
        "clinic": service(ids["clinic"], ["medical-care"], eligibility=None, name="Clinic"),
        "legal": service(ids["legal"], ["legal-aid"], languages=("ar", "fr"), name="Legal aid"),
        "hotline": service(ids["hotline"], ["hotline", "case-management"], eligibility=None, name="Hotline"),
    }
    for key, body in services.items():
        r = await system.post("/HealthcareService", json=body)
        assert r.status_code == 201, r.text
        ids[f"svc-{key}"] = r.json()["id"]
    return ids


def patient(**extra) -> dict:
    body = {"resourceType": "Patient", "identifier": [{"system": "https://amal-hotline.example/case",
                                                       "value": f"HTL-{uuid.uuid4().hex[:6]}"}],
            "gender": "female", "birthDate": "1994",
            "communication": [{"language": coding(BCP47, "prs"), "preferred": True}],
            "extension": [{"url": codes.EXT_INTERPRETER, "valueBoolean": True}]}
    body.update(extra)
    return body


def consent(patient_ref: str, holder: str, recipients: list[str], categories: tuple[str, ...] = ("referral",),
            status: str = "active") -> dict:
    return {"resourceType": "Consent", "status": status,
            "scope": coding(codes.CONSENT_SCOPE_SYSTEM, "patient-privacy"),
            "category": [coding("http://loinc.org", "59284-0")],
            "patient": {"reference": patient_ref}, "dateTime": "2026-11-20T10:00:00Z",
            "organization": [{"reference": f"Organization/{holder}"}],
            "policyRule": coding(codes.ACT_CODE_SYSTEM, codes.OPT_IN),
            "provision": {"type": "permit",
                          "actor": [{"role": coding(codes.PARTICIPATION_SYSTEM, codes.RECIPIENT_ROLE),
                                     "reference": {"reference": r}} for r in recipients],
                          "code": [coding(codes.DATA_CATEGORY, c) for c in categories]}}


def document(patient_id: str, author: str, category: str = "incident") -> dict:
    """A DocumentReference about the Patient, authored by the organisation `author` (a one-line text note)."""
    return {"resourceType": "DocumentReference", "status": "current", "subject": {"reference": f"Patient/{patient_id}"},
            "type": {"coding": [{"system": "http://loinc.org", "code": "57133-1"}]},
            "category": [{"coding": [{"system": codes.DATA_CATEGORY, "code": category}]}],
            "author": [{"reference": f"Organization/{author}"}],
            "content": [{"attachment": {"contentType": "text/plain", "data": base64.b64encode(b"note").decode()}}]}


def service_request(patient_ref: str, requester: str, performers: list[str], code: str, category: str,
                    consent_ref: str | None, safe_contact: bool = True, **extra) -> dict:
    body = {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "urgent",
            "category": [coding(codes.SERVICE_TYPE, category)], "code": coding(codes.SERVICE_TYPE, code),
            "subject": {"reference": patient_ref}, "requester": {"reference": f"Organization/{requester}"},
            "performer": [{"reference": p} for p in performers], "authoredOn": "2026-11-20T10:05:00Z",
            "orderDetail": [coding(codes.REFERRAL_CODES, codes.CONTACT_PROHIBITED)]}
    if consent_ref:
        body["supportingInfo"] = [{"reference": consent_ref}]
    if safe_contact:
        body["extension"] = [{"url": codes.EXT_SAFE_CONTACT, "extension": [
            {"url": "method", "valueCode": "via-referrer"},
            {"url": "telecom", "valueContactPoint": {"system": "phone", "value": SAFE_PHONE}},
            {"url": "times", "valueString": "weekdays 10:00-12:00"},
            {"url": "code-word", "valueString": CODE_WORD}]}]
    body.update(extra)
    return body


def task(patient_ref: str, request_ref: str, requester: str, owner: str | None, status: str = "requested") -> dict:
    body = {"resourceType": "Task", "status": status, "intent": "order",
            "code": coding(codes.TASK_CODE_SYSTEM, "fulfill"), "focus": {"reference": request_ref},
            "for": {"reference": patient_ref}, "requester": {"reference": f"Organization/{requester}"},
            "authoredOn": "2026-11-20T10:05:00Z"}
    if owner:
        body["owner"] = {"reference": owner}
    return body


def _organisation_of(ids: dict[str, str], reference: str) -> str:
    """The Organization a Consent names for a performer (R4: a Consent actor cannot be a HealthcareService)."""
    if reference.startswith("HealthcareService/"):
        key = next(k for k, v in ids.items() if v == reference.split("/")[1])
        return f"Organization/{ids[key.removeprefix('svc-')]}"
    return reference


def referral_bundle(ids: dict[str, str], to: list[str], code: str = "safety-shelter", category: str | None = None,
                    recipients: list[str] | None = None, categories: tuple[str, ...] = ("referral",),
                    consent_status: str = "active", with_consent: bool = True, owner: str | None = "first",
                    patient_extra: dict | None = None, request_extra: dict | None = None,
                    task_status: str = "requested") -> dict:
    """One transaction: Patient, Consent, ServiceRequest, Task from the hotline to `to` (references)."""
    pu, cu, su, tu = (f"urn:uuid:{uuid.uuid4()}" for _ in range(4))
    recipients = [_organisation_of(ids, r) for r in to] if recipients is None else recipients
    entries = [{"fullUrl": pu, "resource": patient(**(patient_extra or {})),
                "request": {"method": "POST", "url": "Patient"}}]
    if with_consent:
        entries.append({"fullUrl": cu, "resource": consent(pu, ids["hotline"], recipients, categories,
                                                           consent_status),
                        "request": {"method": "POST", "url": "Consent"}})
    entries.append({"fullUrl": su, "resource": service_request(pu, ids["hotline"], to, code,
                                                               category or code.replace("clinical-management-of-rape",
                                                                                        "medical-care"),
                                                               cu if with_consent else None,
                                                               **(request_extra or {})),
                    "request": {"method": "POST", "url": "ServiceRequest"}})
    entries.append({"fullUrl": tu, "resource": task(pu, su, ids["hotline"], to[0] if owner == "first" else owner,
                                                     task_status),
                    "request": {"method": "POST", "url": "Task"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def created_ids(response_body: dict) -> dict[str, str]:
    """{resource type: id} from a transaction-response (one of each type)."""
    out = {}
    for entry in response_body["entry"]:
        rtype, rid = entry["response"]["location"].split("/")[:2]
        out[rtype] = rid
    return out


async def referral_via_api(partner, system, requester: str, receiver: str, requester_ref: str | None = None,  # noqa: ANN001
                           upto: str = "Task") -> dict[str, str]:
    """A complete referral posted by `partner` (a client of `requester`) one resource at a time, for tests of other
    packages: the receiver gets a directory entry first (by the exchange itself). Stops after `upto`."""
    r = await system.post("/HealthcareService", json=service(receiver, ["safety-shelter"], name="Shelter beds"))
    assert r.status_code == 201, r.text
    ids: dict[str, str] = {}
    requester_ref = requester_ref or f"Organization/{requester}"
    steps = [
        ("Patient", lambda: patient()),
        ("Consent", lambda: consent(f"Patient/{ids['Patient']}", requester, [f"Organization/{receiver}"])),
        ("ServiceRequest", lambda: dict(service_request(
            f"Patient/{ids['Patient']}", requester, [f"Organization/{receiver}"], "safety-shelter",
            "safety-shelter", f"Consent/{ids['Consent']}"), requester={"reference": requester_ref})),
        ("Task", lambda: dict(task(f"Patient/{ids['Patient']}", f"ServiceRequest/{ids['ServiceRequest']}",
                                   requester, f"Organization/{receiver}"), requester={"reference": requester_ref})),
    ]
    for rtype, body in steps:
        r = await partner.post(f"/{rtype}", json=body())
        assert r.status_code == 201, r.text
        ids[rtype] = r.json()["id"]
        if rtype == upto:
            break
    return ids


def task_for(ids: dict[str, str], requester: str, receiver: str) -> dict:
    """The Task of a referral started with `referral_via_api(..., upto="ServiceRequest")`."""
    return task(f"Patient/{ids['Patient']}", f"ServiceRequest/{ids['ServiceRequest']}", requester,
                f"Organization/{receiver}")
