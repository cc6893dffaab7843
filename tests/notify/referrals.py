"""Realistic referrals for notification tests, posted by the referring partner through the FHIR API."""
from __future__ import annotations

import httpx

from exchange.referral.codes import DATA_CATEGORY, SERVICE_TYPE

SURVIVOR_NAME = "Amina Qadiri"
SURVIVOR_PHONE = "+93 700 555 123"
SAFE_WORD = "blue-lantern"
TASK_TOPIC = "http://gbv-exchange.org/fhir/SubscriptionTopic/referral-task"
SR_TOPIC = "http://gbv-exchange.org/fhir/SubscriptionTopic/referral-service-request"
OVERDUE_TOPIC = "http://gbv-exchange.org/fhir/SubscriptionTopic/referral-overdue"
EXT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"


async def _post(client: httpx.AsyncClient, body: dict) -> dict:
    r = await client.post(f"/{body['resourceType']}", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def create_referral(client: httpx.AsyncClient, requester: str, receiver: str) -> dict[str, dict]:
    """Patient, Consent naming the receiver, ServiceRequest and Task: what a hotline sends a shelter."""
    patient = await _post(client, {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:gbv:case-code", "value": "HL-2024-0042"}],
        "name": [{"text": SURVIVOR_NAME}],
        "telecom": [{"system": "phone", "value": SURVIVOR_PHONE}],
        "gender": "female",
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "fa-AF"}]}}],
    })
    consent = await _post(client, {
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient['id']}"},
        "organization": [{"reference": f"Organization/{requester}"}], "dateTime": "2024-05-01T09:55:00Z",
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "actor": [{
            "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                 "code": "IRCP"}]},
            "reference": {"reference": f"Organization/{receiver}"}}],
            "code": [{"coding": [{"system": DATA_CATEGORY, "code": c}]} for c in ("referral", "identity", "contact")]},
    })
    request = await _post(client, {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "urgent",
        "category": [{"coding": [{"system": SERVICE_TYPE, "code": "safety-shelter"}]}],
        "code": {"coding": [{"system": SERVICE_TYPE, "code": "safety-shelter"}]},
        "subject": {"reference": f"Patient/{patient['id']}"},
        "requester": {"reference": f"Organization/{requester}"},
        "performer": [{"reference": f"Organization/{receiver}"}],
        "supportingInfo": [{"reference": f"Consent/{consent['id']}"}],
        "note": [{"text": f"Safe word {SAFE_WORD}; call only mornings"}],
    })
    task = await create_task(client, requester, receiver, request["id"], patient["id"])
    return {"patient": patient, "consent": consent, "request": request, "task": task}


async def create_task(client: httpx.AsyncClient, requester: str, receiver: str, request_id: str, patient_id: str
                      ) -> dict:
    return await _post(client, {
        "resourceType": "Task", "status": "requested", "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "focus": {"reference": f"ServiceRequest/{request_id}"},
        "for": {"reference": f"Patient/{patient_id}"},
        "requester": {"reference": f"Organization/{requester}"},
        "owner": {"reference": f"Organization/{receiver}"},
        "authoredOn": "2024-05-01T10:00:00Z",
    })


def subscription(endpoint: str, filters: list[str], topic: str = TASK_TOPIC, payload: str = "id-only",
                 **channel_extras) -> dict:
    channel: dict = {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                     "_payload": {"extension": [{"url": f"{EXT}/backport-payload-content", "valueCode": payload}]}}
    extensions = []
    if "heartbeat" in channel_extras:
        extensions.append({"url": f"{EXT}/backport-heartbeat-period", "valueUnsignedInt": channel_extras["heartbeat"]})
    if "timeout" in channel_extras:
        extensions.append({"url": f"{EXT}/backport-timeout", "valueUnsignedInt": channel_extras["timeout"]})
    if "max_count" in channel_extras:
        extensions.append({"url": f"{EXT}/backport-max-count", "valuePositiveInt": channel_extras["max_count"]})
    if extensions:
        channel["extension"] = extensions
    if "header" in channel_extras:
        channel["header"] = channel_extras["header"]
    body = {"resourceType": "Subscription", "status": "requested", "reason": "Referrals addressed to us",
            "meta": {"profile": [f"{EXT}/backport-subscription"]}, "criteria": topic, "channel": channel}
    if filters:
        body["_criteria"] = {"extension": [{"url": f"{EXT}/backport-filter-criteria", "valueString": f}
                                           for f in filters]}
    return body


def status_of(bundle: dict) -> dict:
    """The Parameters status (first entry) of a notification Bundle, as {name: value} plus the events."""
    params = bundle["entry"][0]["resource"]
    assert params["resourceType"] == "Parameters"
    out: dict = {"events": []}
    for p in params["parameter"]:
        if p["name"] == "notification-event":
            out["events"].append({part["name"]: next(v for k, v in part.items() if k.startswith("value"))
                                  for part in p["part"]})
        else:
            out[p["name"]] = next(v for k, v in p.items() if k.startswith("value"))
    return out
