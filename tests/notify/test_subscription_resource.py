"""Creating Subscriptions: the backport profile, what is refused (422, nothing stored), entitlement, topics."""
from __future__ import annotations

import pytest

from tests.notify.referrals import EXT, OVERDUE_TOPIC, SR_TOPIC, TASK_TOPIC, subscription

HOOK = "https://receiver.example.org/hook"


async def _count(client) -> int:
    r = await client.get("/Subscription", params={"_total": "accurate"})
    return r.json()["total"]


@pytest.mark.parametrize("change, where", [
    (lambda b: b.update(criteria="http://example.org/SubscriptionTopic/unknown"), "Subscription.criteria"),
    (lambda b: b["_criteria"]["extension"][0].update(valueString="Task?patient=Patient/1"),
     "Subscription.criteria.extension[0]"),
    (lambda b: b["_criteria"]["extension"][0].update(valueString="Patient?owner=Organization/1"),
     "Subscription.criteria.extension[0]"),
    (lambda b: b["channel"].update(type="email"), "Subscription.channel.type"),
    (lambda b: b["channel"].update(endpoint="http://receiver.example.org/hook"), "Subscription.channel.endpoint"),
    (lambda b: b["channel"].update(endpoint="https://169.254.169.254/latest"), "Subscription.channel.endpoint"),
    (lambda b: b["channel"].update(endpoint="https://10.0.0.7/hook"), "Subscription.channel.endpoint"),
    (lambda b: b["channel"].update(endpoint="https://[fe80::1]/hook"), "Subscription.channel.endpoint"),
    (lambda b: b["channel"].update(payload="application/fhir+xml"), "Subscription.channel.payload"),
    (lambda b: b["channel"]["_payload"]["extension"][0].update(valueCode="full-resource"),
     "Subscription.channel.payload.extension"),
    (lambda b: b["channel"]["_payload"]["extension"][0].update(valueCode="everything"),
     "Subscription.channel.payload.extension"),
    (lambda b: b["channel"].update(header=["X-Exchange-Signature: forged"]), "Subscription.channel.header[0]"),
    (lambda b: b["channel"].update(header=["no colon here"]), "Subscription.channel.header[0]"),
    (lambda b: b["channel"].update(extension=[{"url": f"{EXT}/backport-timeout", "valueUnsignedInt": 3600}]),
     "Subscription.channel.extension"),
    (lambda b: b["channel"].update(extension=[{"url": f"{EXT}/backport-max-count", "valuePositiveInt": 100000}]),
     "Subscription.channel.extension"),
])
async def test_unsupported_subscription_is_refused_with_422(system, orgs, change, where):
    body = subscription(HOOK, [f"Task?owner=Organization/{orgs['shelter']}"])
    change(body)
    r = await system.post("/Subscription", json=body)
    assert r.status_code == 422, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(where in issue.get("expression", []) for issue in outcome["issue"]), outcome
    assert await _count(system) == 0


async def test_partner_may_subscribe_only_to_its_own_referrals(partner, orgs):
    shelter = await partner(orgs["shelter"])
    for filters in ([], [f"Task?owner=Organization/{orgs['clinic']}"],
                    [f"Task?owner=Organization/{orgs['shelter']},Organization/{orgs['clinic']}"],
                    ["Task?status=requested"]):
        r = await shelter.post("/Subscription", json=subscription(HOOK, filters))
        assert r.status_code == 422, (filters, r.text)
        assert "own referrals" in r.text or "not party" in r.text
    r = await shelter.post("/Subscription", json=subscription(HOOK, ["ServiceRequest?_id=does-not-exist"],
                                                              topic=SR_TOPIC))
    assert r.status_code == 422
    assert await _count(shelter) == 0
    r = await shelter.post("/Subscription", json=subscription(
        HOOK, [f"Task?owner=Organization/{orgs['shelter']}&status=requested,accepted"]))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "requested"
    # another organisation cannot see it, change it or ask its status
    clinic = await partner(orgs["clinic"])
    assert (await clinic.get(f"/Subscription/{created['id']}")).status_code == 404
    assert (await clinic.get(f"/Subscription/{created['id']}/$status")).status_code == 404
    assert (await clinic.get(f"/Subscription/{created['id']}/$events")).status_code == 404
    assert (await clinic.put(f"/Subscription/{created['id']}", json=created)).status_code == 405  # as if unknown
    assert await _count(clinic) == 0


async def test_subscriber_may_only_request_or_switch_off(system, orgs):
    r = await system.post("/Subscription", json=subscription(HOOK, [f"Task?owner=Organization/{orgs['shelter']}"]))
    created = r.json()
    created["status"] = "active"
    r = await system.put(f"/Subscription/{created['id']}", json=created)
    assert r.status_code == 422
    assert r.json()["issue"][0]["expression"] == ["Subscription.status"]
    created["status"] = "off"
    r = await system.put(f"/Subscription/{created['id']}", json=created)
    assert r.status_code == 200, r.text
    created["criteria"] = SR_TOPIC
    created["_criteria"]["extension"][0]["valueString"] = f"ServiceRequest?performer=Organization/{orgs['shelter']}"
    r = await system.put(f"/Subscription/{created['id']}", json=created)
    assert r.status_code == 422


async def test_topics_are_listed_and_advertised(system):
    r = await system.get("/Subscription/$topics")
    assert r.status_code == 200
    topics = {next(p["valueCanonical"] for p in t["part"] if p["name"] == "canonical"): t
              for t in r.json()["parameter"]}
    assert set(topics) == {TASK_TOPIC, SR_TOPIC, OVERDUE_TOPIC}
    task_filters = {f["part"][0]["valueString"] for f in topics[TASK_TOPIC]["part"] if f["name"] == "filter"}
    assert task_filters == {"owner", "requester", "status", "code"}
    statement = (await system.get("/metadata")).json()
    entry = next(e for e in statement["rest"][0]["resource"] if e["type"] == "Subscription")
    canonicals = {e["valueCanonical"] for e in entry["extension"]
                  if e["url"].endswith("capabilitystatement-subscriptiontopic-canonical")}
    assert canonicals == {TASK_TOPIC, SR_TOPIC, OVERDUE_TOPIC}
    assert {o["name"] for o in entry["operation"]} >= {"status", "events"}
    assert "SubscriptionTopic" not in {e["type"] for e in statement["rest"][0]["resource"]}


@pytest.mark.parametrize("url, allowed", [
    ("https://shelter.example.org/hook", True), ("https://93.184.216.34/hook", True),
    ("http://shelter.example.org/hook", False), ("https://localhost/hook", False), ("http://127.0.0.1:9/h", False),
    ("https://[::1]/hook", False), ("https://192.168.1.4/hook", False), ("https://169.254.169.254/", False),
    ("https://user:pw@shelter.example.org/", False), ("ftp://shelter.example.org/", False), ("not a url", False),
])
def test_endpoint_policy_of_a_production_deployment(url, allowed):
    from exchange.egress import url_problem

    assert (url_problem(url, allow_loopback=False) is None) is allowed
