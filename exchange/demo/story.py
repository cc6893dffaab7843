"""The demo story of `make run`, told through the same interactions and rules partners use.

A hotline refers a survivor (case code only) to a shelter, a clinic (clinical management of rape, within 72 hours)
and a legal aid organisation, with her consent for each; the shelter accepts; the clinic completes; legal aid
acknowledges receipt; then the survivor withdraws her consent for legal aid, which cancels that referral and ends
legal aid's access. Each organisation acts as itself (a partner context), so the story passes every referral rule.
Idempotent: a second run finds the story's ServiceRequests by identifier and does nothing.
"""
from __future__ import annotations

from exchange.context import RequestContext, system_context
from exchange.fhir.interactions import create, read, update
from exchange.fhir.search import parse_search
from exchange.fhir.transaction import process_bundle
from exchange.referral import codes, directory
from exchange.kernel.exchange import Exchange
from exchange.fhir.search_sql import plan_conditions, plan_order
from exchange.kernel.unit import open_unit

SERVICE_SID = f"{codes.BASE}/sid/service"
STORY_SID = f"{codes.BASE}/sid/demo-referral"
CASE_SID = "https://amal-hotline.example.org/case"
AUTHORED = "2026-11-24T21:45:00+03:00"

CAPACITY_UPDATED = "2026-11-24T08:00:00+03:00"
# demo organisation key -> (capacity status, places, waitlist), and intake rules
CAPACITY = {"hotline-1": ("available", None, None), "shelter-1": ("available", 3, None),
            "clinic-1": ("available", None, None), "legal-1": ("waitlist", 0, 4),
            "counselling-1": ("available", 6, None), "livelihood-1": ("available", 12, None)}
INTAKE = {
    "shelter-1": [{"url": "min-age", "valueUnsignedInt": 18}, {"url": "cost", "valueCode": "free"},
                  {"url": "cost-note", "valueString": "Children up to 12 stay with their mother"}],
    "clinic-1": [{"url": "cost", "valueCode": "free"}],
    "legal-1": [{"url": "min-age", "valueUnsignedInt": 18}, {"url": "document", "valueString": "Any identity document, "
                "if she has one (none is needed for advice)"}, {"url": "cost", "valueCode": "free"}],
    "livelihood-1": [{"url": "min-age", "valueUnsignedInt": 18}, {"url": "max-age", "valueUnsignedInt": 60},
                     {"url": "cost", "valueCode": "free"}],
}

# Confidential demo services, with their (made-up) whereabouts; anyone reaches intake through the hotline's line.
LOCATION_SID = f"{codes.BASE}/sid/location"
INTAKE_LINE = {"system": "phone", "value": "+962 6 500 1000", "use": "work"}
CONFIDENTIAL = {"shelter-1": {
    "name": "Safe Haven house", "phone": "+962 6 555 0101", "position": {"latitude": 31.95, "longitude": 35.91},
    "address": {"line": ["12 Example Street"], "city": "Amman", "district": "Marka", "state": "Amman",
                "country": "JO"}}}

# demo organisation key -> (service name, service types, languages, eligibility)
SERVICES = {
    "hotline-1": ("Amal hotline and case management", ["hotline", "case-management"], ["ar", "prs", "en"], None),
    "shelter-1": ("Safe Haven emergency shelter", ["safety-shelter"], ["ar", "prs", "fa", "en"], "women-only"),
    "clinic-1": ("Al-Noor post-rape care", ["medical-care", "clinical-management-of-rape"], ["ar", "en", "fr"], None),
    "legal-1": ("Justice for Women legal aid", ["legal-aid"], ["ar", "fr"], "women-only"),
    "counselling-1": ("Sakina counselling", ["psychosocial-support"], ["ar", "prs", "ur"], None),
    "livelihood-1": ("Tamkeen job training", ["livelihood"], ["ar", "tr", "id"], "adults"),
}

# receiver key -> (requested code, category, consented data categories, priority, incident type disclosed)
REFERRALS = {
    "shelter-1": ("safety-shelter", "safety-shelter", ["referral"], "urgent", False),
    "clinic-1": ("clinical-management-of-rape", "medical-care", ["referral", "incident", "health"], "stat", True),
    "legal-1": ("legal-aid", "legal-aid", ["referral", "incident"], "routine", True),
}


def _cc(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code}]}


def _partner(org_id: str) -> RequestContext:
    return RequestContext(client_id="demo-story", organization_id=org_id, role="partner",
                          scopes=frozenset({"system/*.cruds"}))


def service_resource(org_id: str, key: str) -> dict:
    name, types, languages, eligibility = SERVICES[key]
    body = {"resourceType": "HealthcareService", "active": True, "name": name,
            "identifier": [{"system": SERVICE_SID, "value": key}],
            "extension": [directory.capacity_extension(*CAPACITY[key][:1], CAPACITY_UPDATED, *CAPACITY[key][1:])],
            "providedBy": {"reference": f"Organization/{org_id}"},
            "category": [_cc(codes.SERVICE_TYPE, types[0])], "type": [_cc(codes.SERVICE_TYPE, t) for t in types],
            "communication": [_cc("urn:ietf:bcp:47", lang) for lang in languages],
            "availableTime": [{"daysOfWeek": ["sun", "mon", "tue", "wed", "thu"], "availableStartTime": "08:00:00",
                               "availableEndTime": "17:00:00"}]}
    if key == "hotline-1":
        body["availableTime"] = [{"allDay": True}]
    if eligibility:
        body["eligibility"] = [{"code": _cc(codes.ELIGIBILITY, eligibility)}]
    if key in INTAKE:
        body["extension"].append({"url": codes.EXT_INTAKE, "extension": INTAKE[key]})
    if key in CONFIDENTIAL:  # the shelter's house: address and phone only for parties of a referral to it
        body["extension"].append(_confidential())
        body["telecom"] = [{"system": "phone", "value": CONFIDENTIAL[key]["phone"], "use": "work"}]
        body["location"] = [{"reference": f"Location/{key}"}]
    return body


def _confidential() -> dict:
    return {"url": codes.EXT_CONFIDENTIAL, "extension": [{"url": "intake-contact", "valueContactPoint": INTAKE_LINE}]}


def location_resource(org_id: str, key: str) -> dict:
    """The confidential Location of a demo service (`Location/shelter-1`)."""
    where = CONFIDENTIAL[key]
    return {"resourceType": "Location", "status": "active", "mode": "instance", "name": where["name"],
            "identifier": [{"system": LOCATION_SID, "value": key}], "extension": [_confidential()],
            "address": where["address"], "position": where["position"],
            "telecom": [{"system": "phone", "value": where["phone"]}],
            "managingOrganization": {"reference": f"Organization/{org_id}"}}


async def _story_exists(exchange: Exchange) -> bool:
    plan = parse_search("ServiceRequest", [("identifier", f"{STORY_SID}|shelter-1")], strict=True,
                        default_count=1, max_count=1)
    async with open_unit(exchange, system_context(), "search-type", "ServiceRequest") as unit:
        found, _ = await unit.repo.search("ServiceRequest", plan_conditions(plan), plan_order(plan), 1, 0,
                                          unit.access, with_total=False)
    return bool(found)


def _bundle(orgs: dict[str, str]) -> dict:
    hotline = f"Organization/{orgs['hotline-1']}"
    entries = [{"fullUrl": "urn:uuid:survivor", "request": {"method": "POST", "url": "Patient"}, "resource": {
        "resourceType": "Patient", "identifier": [{"system": CASE_SID, "value": "HTL-2026-0042"}],
        "gender": "female", "birthDate": "1995",
        "communication": [{"language": _cc("urn:ietf:bcp:47", "prs"), "preferred": True}],
        "extension": [{"url": codes.EXT_INTERPRETER, "valueBoolean": True},
                      {"url": codes.EXT_SPECIFIC_NEEDS, "valueCodeableConcept": {"text": "Two children with her"}}]}}]
    for key, (code, category, categories, priority, incident) in REFERRALS.items():
        receiver = f"Organization/{orgs[key]}"
        entries.append({"fullUrl": f"urn:uuid:consent-{key}", "request": {"method": "POST", "url": "Consent"},
                        "resource": {
            "resourceType": "Consent", "status": "active", "identifier": [{"system": STORY_SID, "value": key}],
            "scope": _cc(codes.CONSENT_SCOPE_SYSTEM, "patient-privacy"),
            "category": [_cc("http://loinc.org", "59284-0")], "patient": {"reference": "urn:uuid:survivor"},
            "dateTime": "2026-11-24T21:40:00+03:00", "organization": [{"reference": hotline}],
            "policyRule": _cc(codes.ACT_CODE_SYSTEM, codes.OPT_IN),
            "provision": {"type": "permit", "actor": [{"role": _cc(codes.PARTICIPATION_SYSTEM, codes.RECIPIENT_ROLE),
                                                       "reference": {"reference": receiver}}],
                          "code": [_cc(codes.DATA_CATEGORY, c) for c in categories]}}})
        request = {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": priority,
                   "identifier": [{"system": STORY_SID, "value": key}],
                   "category": [_cc(codes.SERVICE_TYPE, category)], "code": _cc(codes.SERVICE_TYPE, code),
                   "subject": {"reference": "urn:uuid:survivor"}, "requester": {"reference": hotline},
                   "performer": [{"reference": receiver}], "authoredOn": AUTHORED,
                   "supportingInfo": [{"reference": f"urn:uuid:consent-{key}"}],
                   "orderDetail": [_cc(codes.REFERRAL_CODES, codes.CONTACT_PROHIBITED)],
                   "extension": [{"url": codes.EXT_SAFE_CONTACT, "extension": [
                       {"url": "method", "valueCode": "via-referrer"},
                       {"url": "times", "valueString": "Weekdays 10:00-12:00"},
                       {"url": "leave-message", "valueBoolean": False},
                       {"url": "instructions", "valueString": "Do not call her; the hotline passes messages."}]}]}
        if incident:
            request["reasonCode"] = [{"text": "Rape"}]
        entries.append({"fullUrl": f"urn:uuid:request-{key}", "resource": request,
                        "request": {"method": "POST", "url": "ServiceRequest"}})
        entries.append({"fullUrl": f"urn:uuid:task-{key}", "request": {"method": "POST", "url": "Task"}, "resource": {
            "resourceType": "Task", "status": "requested", "intent": "order", "priority": priority,
            "identifier": [{"system": STORY_SID, "value": key}],
            "code": _cc(codes.TASK_CODE_SYSTEM, "fulfill"), "focus": {"reference": f"urn:uuid:request-{key}"},
            "for": {"reference": "urn:uuid:survivor"}, "requester": {"reference": hotline},
            "owner": {"reference": receiver}, "authoredOn": AUTHORED}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def _change(exchange: Exchange, ctx: RequestContext, resource_type: str, resource_id: str, **changes) -> None:
    current = (await read.read(exchange, ctx, resource_type, resource_id)).stored
    await update.update(exchange, ctx, resource_type, resource_id, {**current.resource, **changes}, current.etag)


async def load_story(exchange: Exchange, orgs: dict[str, str]) -> None:
    """The directory entries (by the exchange) and the referral story (by the organisations themselves)."""
    for key in CONFIDENTIAL:
        await create.create(exchange, system_context(), "Location", location_resource(orgs[key], key),
                            f"identifier={LOCATION_SID}|{key}", resource_id=key)  # Location/shelter-1
    for key in SERVICES:
        await create.create(exchange, system_context(), "HealthcareService", service_resource(orgs[key], key),
                            f"identifier={SERVICE_SID}|{key}", resource_id=key)  # HealthcareService/shelter-1
    if await _story_exists(exchange):
        return
    result = await process_bundle(exchange, _partner(orgs["hotline-1"]), _bundle(orgs))
    ids = {}
    for entry in result.body["entry"]:
        rtype, rid = entry["response"]["location"].split("/")[:2]
        ids.setdefault(rtype, []).append(rid)
    consents, tasks = dict(zip(REFERRALS, ids["Consent"])), dict(zip(REFERRALS, ids["Task"]))
    shelter, clinic, legal = (_partner(orgs[k]) for k in ("shelter-1", "clinic-1", "legal-1"))
    await _change(exchange, shelter, "Task", tasks["shelter-1"], status="accepted",
                  businessStatus={**_cc(codes.REFERRAL_OUTCOME, "appointment-set"),
                                  "text": "Bed reserved; she will come with the hotline's escort"})
    await _change(exchange, clinic, "Task", tasks["clinic-1"], status="accepted")
    await _change(exchange, clinic, "Task", tasks["clinic-1"], status="completed", output=[{
        "type": _cc(codes.REFERRAL_CODES, codes.RESULTING_ACTIVITY),
        "valueString": "Post-rape care given within 72 hours; follow-up visit booked"}])
    await _change(exchange, legal, "Task", tasks["legal-1"], status="received")
    await _change(exchange, _partner(orgs["hotline-1"]), "Consent", consents["legal-1"], status="inactive")
