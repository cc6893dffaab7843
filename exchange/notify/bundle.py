"""Notification Bundles in the R4 shape of the backport IG: a `history` Bundle whose first entry is the
subscription status as a `Parameters` resource (never the R4B SubscriptionStatus, which R4 partners cannot read).

id-only entries carry the focus's fullUrl and request/response only: nothing about the survivor. empty carries no
focus at all. full-resource (only when the deployment allows it) embeds the version that triggered the event.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import orjson

from exchange.notify.spec import EXT
from exchange.store.clock import fhir_instant, utcnow

STATUS_PROFILE = f"{EXT}/backport-subscription-status-r4"
NOTIFICATION_PROFILE = f"{EXT}/backport-subscription-notification-r4"


@dataclass
class NotificationEvent:
    number: int
    occurred: datetime
    focus_type: str
    focus_id: str
    focus_version: int | None
    method: str | None
    content: str | None = None  # the focus version's JSON, for full-resource


def status_parameters(base: str, subscription_id: str, topic: str, status: str, kind: str, events_since: int,
                      events: list[NotificationEvent] = (), content: str = "id-only", error: str | None = None
                      ) -> dict:
    """The R4 `backport-subscription-status-r4` Parameters."""
    parameters: list[dict] = [
        {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{subscription_id}"}},
        {"name": "topic", "valueCanonical": topic},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(events_since)},
    ]
    for event in events:
        parts: list[dict] = [{"name": "event-number", "valueString": str(event.number)},
                             {"name": "timestamp", "valueInstant": fhir_instant(event.occurred)}]
        if content != "empty":
            parts.append({"name": "focus", "valueReference": {"reference": f"{base}/{event.focus_type}/"
                                                                            f"{event.focus_id}"}})
        parameters.append({"name": "notification-event", "part": parts})
    if error:
        parameters.append({"name": "error", "valueCodeableConcept": {"text": error}})
    return {"resourceType": "Parameters", "id": str(uuid.uuid4()), "meta": {"profile": [STATUS_PROFILE]},
            "parameter": parameters}


def _focus_entry(base: str, event: NotificationEvent, content: str) -> dict:
    created = event.method == "POST"
    entry: dict = {"fullUrl": f"{base}/{event.focus_type}/{event.focus_id}"}
    if content == "full-resource" and event.content is not None:
        entry["resource"] = orjson.Fragment(event.content)
    entry["request"] = {"method": event.method or "PUT",
                        "url": event.focus_type if created else f"{event.focus_type}/{event.focus_id}"}
    entry["response"] = {"status": "201" if created else "200"}
    if event.focus_version is not None:
        entry["response"]["etag"] = f'W/"{event.focus_version}"'
    return entry


def notification_bundle(base: str, status: dict, events: list[NotificationEvent] = (), content: str = "id-only"
                        ) -> dict:
    subscription = status["parameter"][0]["valueReference"]["reference"]
    entries = [{"fullUrl": f"urn:uuid:{status['id']}", "resource": status,
                "request": {"method": "GET", "url": f"{subscription}/$status"}, "response": {"status": "200"}}]
    if content != "empty":
        entries += [_focus_entry(base, e, content) for e in events]
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"profile": [NOTIFICATION_PROFILE]},
            "type": "history", "timestamp": fhir_instant(utcnow()), "entry": entries}


def dumps(bundle: dict) -> bytes:
    return orjson.dumps(bundle)
