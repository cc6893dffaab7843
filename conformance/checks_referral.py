"""The guide's rules as two partners meet them: profiles, the Task state machine from each side, consent, isolation.

The kit's own organisation refers a (synthetic) survivor to the peer's organisation, exactly as a hotline's system
would; the peer plays the receiving provider.
"""
from __future__ import annotations

import json
import uuid

from conformance.runner import Failed, Kit, Skipped, check, expect, expect_status, outcome_rule

GUIDE = "https://gbv-exchange.org/fhir"
PROFILE = f"{GUIDE}/StructureDefinition"
SERVICE_TYPE = f"{GUIDE}/CodeSystem/gbv-service-type"
DATA_CATEGORY = f"{GUIDE}/CodeSystem/gbv-data-category"
OUTCOME = f"{GUIDE}/CodeSystem/gbv-referral-outcome"
TASK_STATES = "the guide's Task state table (conformance/README.md, gbv-referral-task)"
CASE = "https://conformance-kit.example.org/case"


def _cc(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code}]}


def _service(kit: Kit) -> tuple[str, str]:
    """(code, category) of a service the peer offers and that accepts referrals."""
    if "service" in kit.state:
        return kit.state["service"]
    peer = kit.need_peer()
    found = expect_status(kit.me.http.get("/HealthcareService", params={
        "organization": f"Organization/{peer.organization_id}", "capacity": "available,waitlist"}), 200).json()
    codes = [c["code"] for e in found.get("entry", []) for t in e["resource"].get("type", [])
             for c in t.get("coding", []) if c.get("system") == SERVICE_TYPE]
    if not codes:
        raise Skipped("the peer's organisation lists no HealthcareService accepting referrals")
    system = expect_status(kit.me.http.get("/CodeSystem/gbv-service-type"), 200).json()
    parent: dict[str, str | None] = {}

    def walk(concepts: list, up: str | None) -> None:
        for c in concepts:
            parent[c["code"]] = up
            walk(c.get("concept", []), c["code"])
    walk(system.get("concept", []), None)
    code = codes[0]
    category = code
    while parent.get(category):
        category = parent[category]
    kit.state["service"] = (code, category)
    return kit.state["service"]


def referral_bundle(kit: Kit, recipients: list[str] | None = None, categories: tuple[str, ...] = ("referral",)
                    ) -> dict:
    peer = kit.need_peer()
    code, category = _service(kit)
    me, to = f"Organization/{kit.me.organization_id}", f"Organization/{peer.organization_id}"
    pu, cu, su, tu = (f"urn:uuid:{uuid.uuid4()}" for _ in range(4))
    resources = [
        (pu, {"resourceType": "Patient", "identifier": [{"system": CASE, "value": f"KIT-{uuid.uuid4().hex[:8]}"}],
              "gender": "female", "birthDate": "1994", "managingOrganization": {"reference": me}}),
        (cu, {"resourceType": "Consent", "status": "active", "scope": _cc(
            "http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
              "category": [_cc("http://loinc.org", "59284-0")], "patient": {"reference": pu},
              "dateTime": "2026-01-01T10:00:00Z", "organization": [{"reference": me}],
              "policyRule": _cc("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN"),
              "provision": {"type": "permit", "actor": [
                  {"role": _cc("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP"),
                   "reference": {"reference": r}} for r in (recipients or [to])],
                  "code": [_cc(DATA_CATEGORY, c) for c in categories]}}),
        (su, {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "routine",
              "category": [_cc(SERVICE_TYPE, category)], "code": _cc(SERVICE_TYPE, code),
              "subject": {"reference": pu}, "requester": {"reference": me}, "performer": [{"reference": to}],
              "supportingInfo": [{"reference": cu}], "authoredOn": "2026-01-01T10:05:00Z"}),
        (tu, {"resourceType": "Task", "status": "requested", "intent": "order",
              "code": _cc("http://hl7.org/fhir/CodeSystem/task-code", "fulfill"), "focus": {"reference": su},
              "for": {"reference": pu}, "requester": {"reference": me}, "owner": {"reference": to},
              "authoredOn": "2026-01-01T10:05:00Z"}),
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": url, "resource": body, "request": {"method": "POST", "url": body["resourceType"]}}
        for url, body in resources]}


def post_referral(kit: Kit) -> dict[str, str]:
    """Post a fresh referral to the peer; {type: id}."""
    r = expect_status(kit.me.http.post("", json=referral_bundle(kit)), 200)
    return {e["response"]["location"].split("/")[0]: e["response"]["location"].split("/")[1]
            for e in r.json()["entry"]}


def referral(kit: Kit) -> dict[str, str]:
    if "referral" not in kit.state:
        kit.state["referral"] = post_referral(kit)
    return kit.state["referral"]


def _rewrite(text: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        text = text.replace(old, new)
    return text


def _task(party, task_id: str) -> dict:  # noqa: ANN001
    return expect_status(party.http.get(f"/Task/{task_id}"), 200).json()


def _put_task(party, task: dict, **changes):  # noqa: ANN001, ANN202
    body = {k: v for k, v in {**task, **changes}.items() if v is not None}
    return party.http.put(f"/Task/{task['id']}", json=body, headers={"If-Match": f'W/"{task["meta"]["versionId"]}"'})


def _refused(response, status: int, rule: str) -> None:  # noqa: ANN001
    expect_status(response, status)
    named = outcome_rule(response)
    expect(named == rule, f"refused, but naming rule {named!r} instead of {rule!r}")


@check("profile-published", "profiles", "the guide's profiles are published and named in the CapabilityStatement",
       "the guide: conformance/README.md; FHIR R4 capabilitystatement.html (supportedProfile)")
def published(kit: Kit) -> None:
    found = expect_status(kit.me.http.get("/StructureDefinition", params={"_count": "100"}), 200).json()
    urls = {e["resource"]["url"] for e in found.get("entry", [])}
    for name in ("gbv-referral-servicerequest", "gbv-referral-task", "gbv-referral-patient", "gbv-referral-consent"):
        expect(f"{PROFILE}/{name}" in urls, f"{name} is not published")
    statement = expect_status(kit.me.http.get("/metadata"), 200).json()
    declared = {p for e in statement["rest"][0]["resource"] for p in e.get("supportedProfile", [])}
    expect(f"{PROFILE}/gbv-referral-task" in declared, "the Task profile is not a supportedProfile")


@check("profile-validate", "profiles", "the kit's referral resources pass $validate against R4 and the profiles, "
       "and a Task with status approved does not", "FHIR R4 resource-operation-validate.html; the guide's profiles")
def validate(kit: Kit) -> None:
    bundle = referral_bundle(kit)
    typed = {e["fullUrl"]: f"{e['resource']['resourceType']}/kit-{i}" for i, e in enumerate(bundle["entry"])}
    for entry in json.loads(_rewrite(json.dumps(bundle), typed))["entry"]:  # $validate checks one resource alone
        resource = entry["resource"]
        r = expect_status(kit.me.http.post(f"/{resource['resourceType']}/$validate", json=resource), 200)
        errors = [i for i in r.json()["issue"] if i["severity"] in ("error", "fatal")
                  and not i.get("diagnostics", "").startswith("referral-reference")]
        expect(not errors, f"{resource['resourceType']}: {errors[:1]}")
    task = referral_bundle(kit)["entry"][3]["resource"]
    r = expect_status(kit.me.http.post("/Task/$validate", json={**task, "status": "approved"}), 200)
    expect(any(i["severity"] == "error" for i in r.json()["issue"]), "Task.status approved passed $validate")


@check("profile-r4-only", "profiles", "an element R4 lacks (R4B's Extension.valueCodeableReference) is refused",
       "FHIR R4 (4.0.1) Extension; the guide: R4 on the wire")
def r4_only(kit: Kit) -> None:
    body = {"resourceType": "Patient", "identifier": [{"system": CASE, "value": "KIT-R4B"}], "extension": [
        {"url": "https://example.org/x", "valueCodeableReference": {"concept": {"text": "x"}}}]}
    r = expect_status(kit.me.http.post("/Patient", json=body), 400)
    expect("valueCodeableReference" in str(r.json()), "the refusal does not name the element")


@check("task-requester-side", "workflow", "the requester cannot make the owner's transition (requested -> "
       "accepted): 422 task-party", TASK_STATES)
def requester_side(kit: Kit) -> None:
    ids = referral(kit)
    _refused(_put_task(kit.me, _task(kit.me, ids["Task"]), status="accepted"), 422, "task-party")


@check("task-owner-side", "workflow", "the owner accepts, starts and completes (with an output); it cannot change "
       "focus (422 task-frozen-element), skip from requested to completed or reopen a completed Task (409 "
       "task-transition)", TASK_STATES)
def owner_side(kit: Kit) -> None:
    peer = kit.need_peer()
    ids = post_referral(kit)
    task = _task(peer, ids["Task"])
    _refused(_put_task(peer, task, status="completed"), 409, "task-transition")
    _refused(_put_task(peer, task, focus={"reference": "ServiceRequest/another"}), 422, "task-frozen-element")
    for status in ("accepted", "in-progress"):
        task = expect_status(_put_task(peer, task, status=status), 200).json()
    output = [{"type": _cc(f"{GUIDE}/CodeSystem/gbv-referral-codes", "resulting-activity"),
               "valueString": "Admitted to the shelter"}]
    task = expect_status(_put_task(peer, task, status="completed", output=output), 200).json()
    _refused(_put_task(peer, task, status="in-progress"), 409, "task-transition")
    kit.state["closed-task"] = task["id"]


@check("task-reject-reason", "workflow", "rejecting a referral needs a coded statusReason from ValueSet "
       "gbv-decline-reason (words alone, or a code of another ValueSet, are refused)", TASK_STATES)
def reject_reason(kit: Kit) -> None:
    peer = kit.need_peer()
    task = _task(peer, post_referral(kit)["Task"])
    _refused(_put_task(peer, task, status="rejected"), 422, "task-status-reason")
    _refused(_put_task(peer, task, status="rejected", statusReason={"text": "No room tonight"}), 422,
             "task-status-reason")
    _refused(_put_task(peer, task, status="rejected", statusReason=_cc(OUTCOME, "did-not-attend")), 422,
             "task-status-reason")  # a failure reason, not a decline reason
    declines = expect_status(kit.me.http.get("/ValueSet/gbv-decline-reason"), 200).json()
    include = next(i for i in declines["compose"]["include"] if i["system"] == OUTCOME)
    code = include["concept"][0]["code"]
    expect_status(_put_task(peer, task, status="rejected", statusReason={**_cc(OUTCOME, code),
                                                                          "text": "No room tonight"}), 200)


@check("task-reoffer", "workflow", "a declined referral is re-offered in one step by its requester only "
       "(Task/[id]/$reoffer: a new Task for the same ServiceRequest)", "the guide: OperationDefinition task-reoffer")
def reoffer(kit: Kit) -> None:
    peer = kit.need_peer()
    task = _task(peer, post_referral(kit)["Task"])
    declined = expect_status(_put_task(peer, task, status="rejected", statusReason=_cc(OUTCOME, "no-capacity")),
                             200).json()
    again = {"resourceType": "Parameters", "parameter": [{"name": "owner", "valueReference": declined["owner"]}]}
    _refused(peer.http.post(f"/Task/{declined['id']}/$reoffer", json=again), 403, "task-reoffer")
    new = expect_status(kit.me.http.post(f"/Task/{declined['id']}/$reoffer", json=again), 201).json()
    expect(new.get("status") == "requested" and new.get("focus") == declined.get("focus"),
           "the re-offer is a new requested Task for the same ServiceRequest")
    expect(expect_status(peer.http.get(f"/Task/{new['id']}"), 200).json()["id"] == new["id"],
           "the provider sees the re-offered referral")
    _refused(kit.me.http.post(f"/Task/{new['id']}/$reoffer", json=again), 409, "task-reoffer")


@check("consent-required", "consent", "a referral whose Consent does not name the receiving organisation is "
       "refused, and nothing of it is stored", "the guide: gbv-referral-consent, rule consent-required")
def consent_required(kit: Kit) -> None:
    bundle = referral_bundle(kit, recipients=[f"Organization/{kit.me.organization_id}"])
    case = bundle["entry"][0]["resource"]["identifier"][0]["value"]
    r = kit.me.http.post("", json=bundle)
    if r.status_code == 200:
        raise Failed("a referral without consent for the receiver was accepted (rule consent-required)")
    _refused(r, 422, "consent-required")
    left = expect_status(kit.me.http.get("/Patient", params={"identifier": f"{CASE}|{case}"}), 200).json()
    expect(left.get("total", len(left.get("entry", []))) == 0, "the refused referral left a Patient behind")


@check("consent-withdrawal", "consent", "withdrawing the Consent ends the receiver's access at once and cancels "
       "the open Task", "the guide: gbv-referral-consent (withdrawal); IASC GBV Guidelines: consent first")
def withdrawal(kit: Kit) -> None:
    peer = kit.need_peer()
    ids = post_referral(kit)
    expect_status(peer.http.get(f"/Patient/{ids['Patient']}"), 200)
    consent = expect_status(kit.me.http.get(f"/Consent/{ids['Consent']}"), 200).json()
    expect_status(kit.me.http.put(f"/Consent/{ids['Consent']}", json={**consent, "status": "inactive"}), 200)
    for rtype in ("Patient", "ServiceRequest", "Consent"):
        expect_status(peer.http.get(f"/{rtype}/{ids[rtype]}"), 404)
    expect(_task(peer, ids["Task"])["status"] == "cancelled", "the open Task was not cancelled")


@check("isolation-read", "isolation", "another organisation cannot learn that a resource exists: read, vread, "
       "history, search and update answer as for an unknown id", "the guide: need to know (404, not 403); "
       "OWASP API1:2023 broken object level authorisation")
def isolation(kit: Kit) -> None:
    peer = kit.need_peer()
    mine = expect_status(kit.me.http.post("/Patient", json={
        "resourceType": "Patient", "identifier": [{"system": CASE, "value": f"KIT-ISO-{uuid.uuid4().hex[:6]}"}],
        "managingOrganization": {"reference": f"Organization/{kit.me.organization_id}"}}), 201).json()
    pid = mine["id"]
    for path in (f"/Patient/{pid}", f"/Patient/{pid}/_history/1", f"/Patient/{pid}/_history"):
        r = peer.http.get(path)
        if r.status_code != 404:
            raise Failed(f"the other organisation got {r.status_code} on GET {path} (rule need-to-know: 404)")
    found = expect_status(peer.http.get("/Patient", params={"_id": pid}), 200).json()
    expect(not found.get("entry"), "the other organisation found it by search (rule need-to-know)")
    unknown = peer.http.put("/Patient/kit-surely-unknown", json={**mine, "id": "kit-surely-unknown"})
    theirs = peer.http.put(f"/Patient/{pid}", json=mine)
    expect(theirs.status_code == unknown.status_code,
           f"update answers {theirs.status_code} for it but {unknown.status_code} for an unknown id")


@check("isolation-referral", "isolation", "a referral is shared with its receiver only: the peer reads the Task "
       "addressed to it, and finds none it is not party to", "the guide: need to know; gbv-referral-task")
def referral_isolation(kit: Kit) -> None:
    peer = kit.need_peer()
    ids = referral(kit)
    expect_status(peer.http.get(f"/Task/{ids['Task']}"), 200)
    found = expect_status(peer.http.get("/Task", params={"_count": "100"}), 200).json()
    me = f"Organization/{peer.organization_id}"
    for entry in found.get("entry", []):
        task = entry["resource"]
        owner = task.get("owner", {}).get("reference", "")
        if owner.startswith("Organization/"):  # open Tasks and service owners are checked by the server's tables
            expect(me in (owner, task.get("requester", {}).get("reference")),
                   f"the peer sees Task/{task['id']} it is not party to")
