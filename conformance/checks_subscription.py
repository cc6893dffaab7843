"""Notifications as the Subscriptions Backport IG 1.1 defines them: topics, and the handshake to the kit's endpoint."""
from __future__ import annotations

import time

from conformance.runner import Kit, Skipped, check, expect, expect_status

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
IG = "FHIR R4 Subscriptions Backport IG 1.1"
TASK_TOPIC = "http://gbv-exchange.org/fhir/SubscriptionTopic/referral-task"


@check("subscription-topics", "subscriptions", "the topics are listed as an R4 Parameters resource and on the "
       "CapabilityStatement's Subscription entry", f"{IG} §Topics (R4: canonicals)")
def topics(kit: Kit) -> None:
    found = expect_status(kit.me.http.get("/Subscription/$topics"), 200).json()
    expect(found.get("resourceType") == "Parameters", "$topics is not a Parameters resource")
    canonicals = {p.get("valueCanonical") for t in found.get("parameter", []) for p in t.get("part", [])}
    expect(TASK_TOPIC in canonicals, "the referral-task topic is not listed")


@check("subscription-handshake", "subscriptions", "a rest-hook Subscription to the kit's endpoint gets a handshake "
       "and turns active", f"{IG} §Handshake")
def handshake(kit: Kit) -> None:
    if not kit.notify_endpoint:
        raise Skipped("needs --listen-port (or --notify-endpoint with --listen-port) for the kit's receiver")
    body = {"resourceType": "Subscription", "status": "requested", "reason": "conformance kit",
            "criteria": TASK_TOPIC, "_criteria": {"extension": [
                {"url": f"{BACKPORT}/StructureDefinition/backport-filter-criteria",
                 "valueString": f"Task?owner=Organization/{kit.me.organization_id}"}]},
            "channel": {"type": "rest-hook", "endpoint": kit.notify_endpoint, "payload": "application/fhir+json",
                        "_payload": {"extension": [{"url": f"{BACKPORT}/StructureDefinition/backport-payload-content",
                                                    "valueCode": "id-only"}]}}}
    made = expect_status(kit.me.http.post("/Subscription", json=body), 201).json()
    deadline = time.monotonic() + 15
    status = made.get("status")
    while time.monotonic() < deadline and status != "active":
        time.sleep(0.3)
        status = expect_status(kit.me.http.get(f"/Subscription/{made['id']}"), 200).json().get("status")
    expect(status == "active", f"the Subscription is {status!r}, not active, after 15 s")
    got = kit.receiver.received if kit.receiver else []
    expect(any("handshake" in str(b) for b in got), "the endpoint received no handshake Bundle")
    expect(all(h.get("x-exchange-signature") for h, _ in got), "a notification without X-Exchange-Signature")
    current = expect_status(kit.me.http.get(f"/Subscription/{made['id']}"), 200).json()
    expect_status(kit.me.http.put(f"/Subscription/{made['id']}", json={**current, "status": "off"}), 200)
