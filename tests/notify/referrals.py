"""Realistic referrals for notification tests, posted by the referring partner through the FHIR API."""
from __future__ import annotations

import httpx

from tests.referral import world

SURVIVOR_NAME = "Amina Qadiri"
SURVIVOR_PHONE = "+93 700 555 123"
SAFE_WORD = "blue-lantern"
TASK_TOPIC = "http://gbv-exchange.org/fhir/SubscriptionTopic/referral-task"
SR_TOPIC = "http://gbv-exchange.org/fhir/SubscriptionTopic/referral-service-request"
OVERDUE_TOPIC = "http://gbv-exchange.org/fhir/SubscriptionTopic/referral-overdue"
EXT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"


CASE_CODE = "HL-2024-0042"


async def _post(client: httpx.AsyncClient, body: dict) -> dict:
    r = await client.post(f"/{body['resourceType']}", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def create_referral(client: httpx.AsyncClient, requester: str, receiver: str) -> dict[str, dict]:
    """Patient, Consent naming the receiver, ServiceRequest and Task: what a hotline sends a shelter (the shared
    builders of `tests.referral.world`, with a name, a phone, a case code and a safe word that no notification may
    carry)."""
    patient = await _post(client, world.patient(identifier=[{"system": "urn:gbv:case-code", "value": CASE_CODE}],
                                                name=[{"text": SURVIVOR_NAME}],
                                                telecom=[{"system": "phone", "value": SURVIVOR_PHONE}]))
    consent = await _post(client, world.consent(f"Patient/{patient['id']}", requester, [f"Organization/{receiver}"],
                                                ("referral", "identity", "contact")))
    request = await _post(client, world.service_request(
        f"Patient/{patient['id']}", requester, [f"Organization/{receiver}"], "safety-shelter", "safety-shelter",
        f"Consent/{consent['id']}", safe_contact=False, note=[{"text": f"Safe word {SAFE_WORD}; call only mornings"}]))
    task = await create_task(client, requester, receiver, request["id"], patient["id"])
    return {"patient": patient, "consent": consent, "request": request, "task": task}


async def create_task(client: httpx.AsyncClient, requester: str, receiver: str, request_id: str, patient_id: str
                      ) -> dict:
    return await _post(client, world.task(f"Patient/{patient_id}", f"ServiceRequest/{request_id}", requester,
                                          f"Organization/{receiver}"))


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
